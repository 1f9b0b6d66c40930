"""Verification benchmarks for an FR model: ``.bin`` sets -> flip-sum embeddings -> accuracy.

Loading and inference live here; the metric itself is the pure function
:func:`vec2face.evaluation.verification_accuracy`. Results are reported as the paper's
tables do: LFW, CFP-FP, AgeDB-30, CALFW, CPLFW and their average, in percent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vec2face.data import decode_image, read_bin
from vec2face.errors import ConfigError, DataFormatError
from vec2face.evaluation import check_pair_kinds, flip_sum_embeddings, verification_accuracy

__all__ = [
    "BENCHMARK_SETS",
    "VerificationSet",
    "evaluate_bins",
    "evaluate_sets",
    "load_verification_sets",
    "markdown_table",
]

# file stem -> column title, in the paper's order
BENCHMARK_SETS: dict[str, str] = {
    "lfw": "LFW",
    "cfp_fp": "CFP-FP",
    "agedb_30": "AgeDB-30",
    "calfw": "CALFW",
    "cplfw": "CPLFW",
}


@dataclass(frozen=True)
class VerificationSet:
    """A decoded verification benchmark.

    Attributes:
        name: file stem (``lfw``, ``cfp_fp``, ...).
        images: uint8 (2P, H, W, 3); rows 2i and 2i+1 form pair i.
        issame: bool (P,).
        source: the file it was read from, named in errors (the name when empty).
    """

    name: str
    images: np.ndarray
    issame: np.ndarray
    source: str = ""

    def subset(self, max_pairs: int | None) -> VerificationSet:
        """At most ``max_pairs`` pairs, evenly spaced so every fold keeps a share."""
        pairs = self.issame.shape[0]
        if not max_pairs or max_pairs >= pairs:
            return self
        keep = np.linspace(0, pairs - 1, max_pairs).round().astype(np.int64)
        rows = np.stack([2 * keep, 2 * keep + 1], axis=1).reshape(-1)
        return VerificationSet(self.name, self.images[rows], self.issame[keep], self.source)


def load_verification_sets(
    bins_dir: str | Path, names: Sequence[str] | None = None
) -> list[VerificationSet]:
    """Read and decode the ``.bin`` sets of a folder.

    Args:
        bins_dir: folder holding ``<name>.bin`` files.
        names: stems to load; None loads the five standard sets that are present, then any
            other ``.bin`` in name order.

    Raises:
        ConfigError: the folder is missing, holds no ``.bin``, or lacks a named set.
        DataFormatError: a set is unreadable, holds no pairs, or holds only genuine (or
            only impostor) pairs, so FAR or TAR is undefined (names the file).
    """
    root = Path(bins_dir)
    if not root.is_dir():
        raise ConfigError(f"benchmark folder not found: {root}")
    present = {p.stem: p for p in sorted(root.glob("*.bin"))}
    if names is None:
        names = [n for n in BENCHMARK_SETS if n in present]
        names += [n for n in present if n not in BENCHMARK_SETS]
    missing = [n for n in names if n not in present]
    if missing or not names:
        raise ConfigError(
            f"{root}: missing benchmark file(s) {', '.join(f'{n}.bin' for n in missing) or '*.bin'}"
        )
    sets = []
    for name in names:
        blobs, issame = read_bin(present[name])
        where = str(present[name])
        try:
            check_pair_kinds(issame)
        except ValueError as exc:
            raise DataFormatError(f"{where}: {exc}") from None
        images = np.stack([decode_image(b, f"{where} image {k}") for k, b in enumerate(blobs)])
        sets.append(VerificationSet(name, images, np.asarray(issame, dtype=bool), where))
    return sets


def evaluate_sets(
    model: nn.Module,
    sets: Sequence[VerificationSet],
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    autocast: bool = False,
    folds: int = 10,
) -> dict[str, dict[str, float]]:
    """Score ``model`` on decoded sets with the flip-sum protocol.

    Returns:
        ``{name: {"accuracy", "accuracy_std", "best_threshold", "tar@far=1e-03", ...}}``.

    Raises:
        DataFormatError: a set has fewer pairs than ``folds`` (checked before embedding).
    """
    for vs in sets:  # before any inference: a set the protocol cannot score fails fast
        if vs.issame.size < folds:
            raise DataFormatError(
                f"{vs.source or vs.name}: {vs.issame.size} pairs, fewer than the {folds} folds "
                "of the verification protocol"
            )
    out: dict[str, dict[str, float]] = {}
    for vs in sets:
        emb = flip_sum_embeddings(model, vs.images, batch_size, device, autocast)
        out[vs.name] = verification_accuracy(emb, vs.issame, folds=folds).summary()
    return out


def evaluate_bins(
    model: nn.Module,
    bins: str | Path | Sequence[VerificationSet],
    names: Sequence[str] | None = None,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    autocast: bool = False,
) -> dict[str, dict[str, float]]:
    """Embed each ``.bin`` set of ``bins_dir`` (flip-sum) and score it (insightface protocol).

    Args:
        model: FR backbone taking (N, 3, 112, 112) in [-1, 1].
        bins: folder of ``.bin`` files, or sets :func:`load_verification_sets` already
            decoded (several models scored on the same sets decode them once).
        names: sets to score from a folder (default: every standard set present, then the
            others).
        batch_size: images per forward pass.
        device: where to run.
        autocast: bfloat16 autocast (fast on AMX CPUs).

    Returns:
        Per set: accuracy, accuracy_std, best_threshold, TAR@FAR values; plus
        ``"average": {"accuracy": mean over sets}``.
    """
    sets = load_verification_sets(bins, names) if isinstance(bins, (str, Path)) else bins
    results = evaluate_sets(model, sets, batch_size, device, autocast)
    results["average"] = {"accuracy": float(np.mean([r["accuracy"] for r in results.values()]))}
    return results


def markdown_table(results: dict[str, dict[str, float]], model_name: str = "model") -> str:
    """The paper's table row: accuracies of the standard sets (then others) and Avg., in %."""
    names = [n for n in BENCHMARK_SETS if n in results]
    names += [n for n in results if n not in BENCHMARK_SETS and n != "average"]
    titles = [BENCHMARK_SETS.get(n, n) for n in names] + ["Avg."]
    accs = [results[n]["accuracy"] for n in names]
    values = [f"{100 * a:.2f}" for a in accs] + [f"{100 * float(np.mean(accs)):.2f}"]
    head = "| Model | " + " | ".join(titles) + " |"
    rule = "| --- | " + " | ".join("---:" for _ in titles) + " |"
    row = f"| {model_name} | " + " | ".join(values) + " |"
    return "\n".join([head, rule, row])
