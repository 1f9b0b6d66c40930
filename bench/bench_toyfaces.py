"""End-to-end speed of the toy world: `vec2face toyfaces` (render + JPEG + files), all cores.

Prints images/s of the whole command, timed from process start to exit, so imports,
worker start-up, the manifest and the preview grid all count.

    python bench/bench_toyfaces.py [--identities 400] [--images 50] [--workers 0]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--identities", type=int, default=400)
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    exe = Path(sys.executable).with_name("vec2face")
    n = args.identities * args.images
    best = 0.0
    for r in range(args.repeats):
        tmp = Path(tempfile.mkdtemp(prefix="bench_toyfaces_"))
        t0 = time.perf_counter()
        subprocess.run([str(exe), "toyfaces", "--pool", "teacher", "--identities", str(args.identities),
                        "--images", str(args.images), "--seed", str(r), "--workers", str(args.workers),
                        "--out", str(tmp / "w"), "--quiet"], check=True, stdout=subprocess.DEVNULL)
        dt = time.perf_counter() - t0
        best = max(best, n / dt)
        print(f"run {r}: {n} images in {dt:.2f} s = {n / dt:.0f} images/s")
        shutil.rmtree(tmp)
    print(f"toyfaces end-to-end: {best:.0f} images/s (best of {args.repeats}; {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
