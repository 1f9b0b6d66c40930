"""Draw the pipeline's asset graph from the Dagster Definitions, as a Mermaid flowchart.

    python scripts/asset_graph.py          # write docs/asset_graph.md, refresh README.md's block
    python scripts/asset_graph.py --check  # exit 1 when either differs from the Definitions

The picture is read from ``orchestration.definitions.defs`` (one subgraph per Dagster
group, an arrow per dependency), so it cannot drift from the code: rerun the script after
changing the graph, and ``--check`` says when someone forgot. The README holds the same
block between the markers ``<!-- asset-graph:start -->`` and ``<!-- asset-graph:end -->``.
The graph depends on ``params.yaml`` (``sources: train`` adds the model pools); the
picture is drawn for ``--params`` (default: the embedded default's ``params.yaml``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "asset_graph.md"
README = REPO / "README.md"
START, END = "<!-- asset-graph:start -->", "<!-- asset-graph:end -->"


def _topological(parents: dict[str, set[str]]) -> list[str]:
    """Every node after its parents; ties broken by name, so the order is stable."""
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(parents):
        ready = sorted(n for n in parents if n not in done and parents[n] <= done)
        if not ready:  # a cycle (Dagster forbids one): keep the rest in name order
            ready = sorted(n for n in parents if n not in done)
        order.extend(ready)
        done.update(ready)
    return order


def mermaid(params: str) -> str:
    """The Mermaid flowchart of the Definitions loaded with ``params``."""
    os.environ["VEC2FACE_PARAMS"] = params
    os.chdir(REPO)
    sys.path.insert(0, str(REPO))
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    nodes = {graph.get(k).key.to_user_string(): graph.get(k) for k in graph.get_all_asset_keys()}
    parents = {
        name: {p.to_user_string() for p in node.parent_keys} & nodes.keys()
        for name, node in nodes.items()
    }
    order = _topological(parents)
    depth: dict[str, int] = {}
    for name in order:  # longest path from a source asset
        depth[name] = 1 + max((depth[p] for p in parents[name]), default=-1)
    members: dict[str, list[str]] = {}
    for name in order:
        members.setdefault(nodes[name].group_name or "default", []).append(name)
    # groups from the sources to the results: by their assets' mean depth, then by name
    groups = dict(
        sorted(members.items(), key=lambda g: (sum(depth[n] for n in g[1]) / len(g[1]), g[0]))
    )

    def vertex(name: str) -> str:
        if nodes[name].partitions_def is None:
            return name
        return f'{name}["{name}<br/>(a partition per shard)"]'

    lines = ["flowchart LR"]
    for group, names in groups.items():
        lines += [f"  subgraph group_{group} [{group}]"]
        lines += ["    " + " & ".join(vertex(n) for n in names), "  end"]
    lines += [f"  {' & '.join(sorted(parents[n]))} --> {n}" for n in order if parents[n]]
    return "```mermaid\n" + "\n".join(lines) + "\n```\n"


def document(block: str) -> str:
    """The whole of docs/asset_graph.md."""
    return (
        "# The asset graph\n\n"
        "Every asset of the Dagster Definitions (`orchestration/definitions.py`), one box per\n"
        "Dagster group, an arrow from each asset to the assets that read it or wait for it.\n"
        "Written by `python scripts/asset_graph.py` from the Definitions of `params.yaml`;\n"
        "`python scripts/asset_graph.py --check` fails when this file or the README's copy is\n"
        "out of date.\n\n" + block
    )


def with_block(readme: str, block: str) -> str:
    """``readme`` with the text between the markers replaced by ``block``."""
    head, sep, rest = readme.partition(START)
    _, sep2, tail = rest.partition(END)
    if not (sep and sep2):
        raise SystemExit(f"{README.name}: markers {START} ... {END} not found")
    return f"{head}{START}\n{block}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--params",
        default="params.yaml",
        help="params file of the picture (relative to the repository)",
    )
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a change")
    args = parser.parse_args(argv)
    block = mermaid(args.params)
    wanted = {DOC: document(block), README: with_block(README.read_text(), block)}
    stale = [p for p, text in wanted.items() if not p.is_file() or p.read_text() != text]
    if args.check:
        for path in stale:
            print(
                f"{path.relative_to(REPO)}: asset graph differs from the Definitions; "
                "run python scripts/asset_graph.py",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for path in stale:
        path.write_text(wanted[path])
        print(f"wrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
