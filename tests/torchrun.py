"""Launch a command as two torchrun nodes of one process each, on loopback (the multi-node
form of docs/scale_out.md): ranks 0 and 1 meet at a static rendezvous on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def run_two_nodes(command: list[str], env: dict[str, str], cwd=None) -> list:
    """Run ``python -m torch.distributed.run --nnodes 2 ... *command`` twice (node ranks 0
    and 1); each node's (returncode, stdout, stderr). Stray processes are killed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node-rank",
             str(rank), "--nproc-per-node", "1", "--master-addr", "127.0.0.1",
             "--master-port", str(port), *command],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
            start_new_session=True,
        )
        for rank in (0, 1)
    ]
    try:
        results = [node.communicate(timeout=300) for node in nodes]
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, 9)
                node.wait()
    return [(node.returncode, out, err) for node, (out, err) in zip(nodes, results, strict=True)]
