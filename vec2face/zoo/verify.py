"""Re-measuring a zoo entry's recorded figures on data rendered from its own manifest.

The manifest records the ``params.yaml`` sections its held-out data came from, so
verification renders the same benchmark sets or pool (seeded, hence identical) into a
work folder, loads the entry through the verified loader and measures it as the build
did. A figure that moved beyond its tolerance fails the entry.

:func:`rescore` records an FR entry's figures on other benchmark sets (the ones a chain's
``benchmarks`` section makes), so that the chain reuses the row instead of scoring the
model again; the weights stay as they are, and the figures they replace stay in the
manifest.
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vec2face.errors import ConfigError
from vec2face.zoo import figures as zf
from vec2face.zoo.models import load
from vec2face.zoo.store import manifest, write_manifest, zoo_root

__all__ = ["VerifyResult", "measure_entry", "rescore", "verify"]


@dataclass
class VerifyResult:
    """Outcome of :func:`verify` for one entry.

    Attributes:
        name: the entry.
        recorded: the manifest's figures.
        measured: the figures measured now.
        moved: ``{figure: (recorded, measured, tolerance)}`` beyond tolerance.
    """

    name: str
    recorded: dict[str, float]
    measured: dict[str, float]
    moved: dict[str, tuple[float, float, float]]

    @property
    def ok(self) -> bool:
        return not self.moved


def _sections_as_params(meta: dict[str, Any]) -> dict[str, Any]:
    """The manifest's recorded sections, back in ``params.yaml`` shape."""
    params: dict[str, Any] = {}
    for key, value in meta["params"].items():
        if key == "world.seed":
            params.setdefault("world", {})["seed"] = value
        elif key.startswith(("world.pools.", "world.model_pools.")):
            _, group, pool = key.split(".")
            params.setdefault("world", {}).setdefault(group, {})[pool] = value
        else:
            params[key] = value
    heldout = meta["data"].get("heldout") or {}
    if isinstance(heldout, dict) and "benchmarks" in heldout:
        # the benchmark config as the build resolved it (defaults included)
        params["benchmarks"] = heldout["benchmarks"]
    return params


def measure_entry(
    name: str, work: str | os.PathLike, root: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, float]:
    """The figures of zoo entry ``name`` measured now, as its build measured them."""
    from vec2face.zoo.build import (
        ATTRIBUTE_HELDOUT_POOL,
        GENERATOR_PAIRS,
        TRUNK_HELDOUT_POOL,
        render_benchmarks,
        render_pool,
    )

    meta = manifest(name, root)
    params = _sections_as_params(meta)
    work = Path(work)
    kind = meta["kind"]
    if kind == "fr":
        bins, _ = render_benchmarks(params, work, progress)
        return zf.fr_figures(load(name, root), bins)
    if kind == "attributes":
        pool_dir, _ = render_pool(params, ATTRIBUTE_HELDOUT_POOL, work, progress)
        return zf.attribute_figures(load(name, root), pool_dir)
    if kind == "trunk":
        pool_dir, _ = render_pool(params, TRUNK_HELDOUT_POOL, work, progress)
        return zf.trunk_figures(load(name, root), pool_dir)
    bins, _ = render_benchmarks(params, work, progress)
    pairs = (meta["data"].get("heldout") or {}).get("pairs", GENERATOR_PAIRS)
    return zf.generator_figures(
        load(name, root), load("teacher", root), load("judge", root), bins / "lfw.bin", pairs
    )[0]


def verify(
    name: str, work: str | os.PathLike, root: str | os.PathLike | None = None,
    progress: bool = True,
) -> VerifyResult:
    """Load ``name`` (checking size and sha256) and re-measure its recorded figures."""
    meta = manifest(name, root)
    measured = measure_entry(name, work, root, progress)
    return VerifyResult(name, dict(meta["figures"]), measured,
                        zf.out_of_tolerance(meta["kind"], meta["figures"], measured))


def rescore(
    name: str, params: dict[str, Any], work: str | os.PathLike,
    root: str | os.PathLike | None = None, *, command: str, progress: bool = True,
) -> dict[str, Any]:
    """Measure FR zoo entry ``name`` on the benchmark sets ``params`` makes and record them
    as its figures.

    The weights (and so version and sha256) stay; the manifest's ``figures``, its
    ``benchmarks`` section and its held-out record become the new sets', and what they
    replace moves to ``earlier_figures`` with the sets it was measured on. The manifest is
    written through a temporary name.

    Args:
        name: an FR entry (``teacher`` or ``judge``).
        params: the parsed ``params.yaml`` whose ``benchmarks`` section names the sets.
        work: folder for the rendered sets (reused).
        root: the zoo folder (default: ``$VEC2FACE_ZOO``, else the package's).
        command: the command line, recorded in the manifest.
        progress: progress bars.

    Returns:
        The manifest written.

    Raises:
        ConfigError: ``name`` is not an FR entry (only those are measured on the sets).
    """
    from vec2face.zoo.build import code_commit, render_benchmarks

    meta = manifest(name, root)
    if meta["kind"] != "fr":
        raise ConfigError(f"zoo rescore {name}: a {meta['kind']} entry is not measured on "
                          "the benchmark sets; only the FR entries (teacher, judge) are")
    bins, bench = render_benchmarks(params, Path(work), progress)
    measured = zf.fr_figures(load(name, root), bins)
    earlier = {
        "benchmarks": (meta["data"].get("heldout") or {}).get("benchmarks"),
        "figures": meta["figures"],
        **({"figures_float32": meta["figures_float32"]} if "figures_float32" in meta else {}),
    }
    record = {k: v for k, v in meta.items() if k != "figures_float32"}
    record.update(
        figures=measured,
        params={**meta["params"], "benchmarks": params.get("benchmarks") or {}},
        data={**meta["data"], "heldout": {"benchmarks": bench}},
        earlier_figures=[*meta.get("earlier_figures", []), earlier],
        rescored={
            "command": command,
            "code_commit": code_commit(),
            "at": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        },
    )
    write_manifest(name, record, zoo_root(root))
    return record
