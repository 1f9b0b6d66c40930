"""Building a zoo entry: train a model of the toy world with fixed seeds, measure it, export it.

``build(name, ...)`` renders what the model learns from (toy pools, benchmark sets) into a
work folder, trains it with the project's own trainer and the ``params.yaml`` section that
names its recipe, measures its held-out figures in float32 and with its weights rounded
to float16, and writes the entry (float16 when every figure stays within its tolerance of
the float32 one). An entry already in the zoo is replaced only when the new model's
headline figure is better and no guard figure worse (:func:`vec2face.zoo.figures.improves`),
or when forced.

Every step resumes: rendered pools and finished training runs in the work folder are
reused, so a build interrupted anywhere continues where it stopped.

The generator's data (:func:`prepare_generator_data`) is also what a long run prepares in
its folder (:mod:`vec2face.generator.long_run`), and ``build("generator", ...,
source=CKPT)`` exports such a run's checkpoint instead of training: the same measurement,
the same replacement rule, a manifest recording the run.
"""

from __future__ import annotations

import copy
import datetime as _dt
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vec2face.config import load_step_config
from vec2face.errors import ConfigError
from vec2face.zoo import figures as zf
from vec2face.zoo.store import ZOO_NAMES, ZooError, manifest, write_entry, zoo_root

__all__ = ["BuildResult", "GeneratorData", "build", "prepare_generator_data"]

#: the params.yaml section that holds each FR model's training recipe
FR_SECTIONS = {"teacher": "fr_teacher_train", "judge": "fr_judge_train"}

#: the pool the attribute estimator is measured on (identities it never saw)
ATTRIBUTE_HELDOUT_POOL = "pca"
#: the pool it learns from (the labelled judge pool, as in the main job)
ATTRIBUTE_TRAIN_POOL = "judge"

#: the perceptual trunk learns from a pool of its own and is measured on identities it
#: never saw (the attribute estimator's held-out pool)
TRUNK_POOL = "perceptual"
TRUNK_HELDOUT_POOL = "pca"

#: the params.yaml section of the zoo generator's recipe (on the profile's preset)
GENERATOR_SECTION = "zoo_generator"

#: generator figures: toy-LFW pairs rebuilt and scored by the judge
GENERATOR_PAIRS = 200


@dataclass
class _Trained:
    """What a recipe hands back: the trained parts and how to measure them."""

    kind: str
    parts: dict[str, nn.Module]
    architecture: dict[str, Any]
    sections: dict[str, Any]
    data: dict[str, Any]
    measure: Callable[[dict[str, nn.Module]], dict[str, float]]
    training: dict[str, Any] = field(default_factory=dict)


@dataclass
class BuildResult:
    """Outcome of :func:`build`.

    Attributes:
        manifest: the new entry's manifest (written or not).
        written: whether the zoo entry was (re)written.
        reason: why it was or was not written.
        previous: the replaced (or kept) entry's figures, if there was one.
    """

    manifest: dict[str, Any]
    written: bool
    reason: str
    previous: dict[str, float] | None = None


# ----------------------------------------------------------------------------- inputs


def _world_seed(params: dict[str, Any]) -> int:
    return int((params.get("world") or {}).get("seed", 0))


def _pool_sizes(params: dict[str, Any], pool: str) -> tuple[str, dict[str, Any]]:
    """``(params key, sizes)`` of a pool: ``world.model_pools.<pool>`` (the pools only
    off-the-shelf models learn from), else ``world.pools.<pool>``."""
    world = params.get("world") or {}
    for group in ("model_pools", "pools"):
        sizes = (world.get(group) or {}).get(pool)
        if isinstance(sizes, dict):
            return f"world.{group}.{pool}", sizes
    raise ConfigError(f"params key world.model_pools.{pool} (or world.pools.{pool}) is "
                      "missing: the zoo renders that pool")


def render_pool(
    params: dict[str, Any], pool: str, work: Path, progress: bool
) -> tuple[Path, dict]:
    """Render (or reuse) a pool of the toy world as the params size it."""
    from vec2face.toyfaces.world import ToyfacesConfig, make_toyfaces

    _, sizes = _pool_sizes(params, pool)
    config = ToyfacesConfig(pool=pool, seed=_world_seed(params), **sizes)
    out = work / "world" / pool
    make_toyfaces(config, out, progress=progress)
    return out, {"pool": pool, "seed": config.seed, "identities": config.identities,
                 "images_per_identity": config.images}


def _pool_section(params: dict[str, Any], pool: str) -> dict[str, Any]:
    key, sizes = _pool_sizes(params, pool)
    return {key: sizes}


def on_recorded_sets(params: dict[str, Any], name: str, root: Path) -> dict[str, Any]:
    """``params`` with the ``benchmarks`` section that zoo entry ``name`` was measured on,
    when the zoo holds that entry: a rebuild (or a long run's curve) is then compared with
    the shipped model on the very same sets, whatever size the chain's own ``benchmarks``
    section asks for. ``params`` unchanged for a new entry."""
    try:
        heldout = manifest(name, root)["data"].get("heldout") or {}
    except ZooError:
        return params
    if isinstance(heldout, dict) and "benchmarks" in heldout:
        return {**params, "benchmarks": heldout["benchmarks"]}
    return params


def render_benchmarks(
    params: dict[str, Any], work: Path, progress: bool
) -> tuple[Path, dict]:
    """Render (or reuse) the benchmark sets as the ``benchmarks`` section sets them."""
    from vec2face.toyfaces.benchmarks import BenchmarksConfig, make_benchmarks

    config = load_step_config(BenchmarksConfig, "benchmarks", params)
    out = work / "benchmarks"
    make_benchmarks(config, out, progress=progress)
    return out, config.model_dump(mode="json", exclude={"workers"})


# ----------------------------------------------------------------------------- recipes


def _fr(name: str, params: dict[str, Any], work: Path, progress: bool) -> _Trained:
    from vec2face.fr.extract import load_trained_backbone
    from vec2face.fr.profiles import fr_train_config
    from vec2face.fr.train import fit, train_paths

    section = FR_SECTIONS[name]
    pool_dir, pool = render_pool(params, name, work, progress)
    bins, bench = render_benchmarks(params, work, progress)
    config = fr_train_config(params.get("profile"), params, section=section)
    out = work / name
    summary = fit(config, train_paths([pool_dir], out, bins), resume=True)
    model = load_trained_backbone(out)
    return _Trained(
        kind="fr",
        parts={"model": model},
        architecture={"name": config.backbone, "embedding_size": config.embedding_size,
                      "overrides": dict(config.backbone_overrides)},
        sections={"profile": params.get("profile"), section: params.get(section) or {},
                  "world.seed": _world_seed(params),
                  **_pool_section(params, name),
                  "benchmarks": params.get("benchmarks") or {}},
        data={"train": [pool], "heldout": {"benchmarks": bench}},
        measure=lambda parts: zf.fr_figures(parts["model"], bins),
        training={"recipe": config.model_dump(mode="json"), "epochs": summary["epochs"],
                  "images": summary["num_images"], "identities": summary["num_classes"]},
    )


def _attributes(params: dict[str, Any], work: Path, progress: bool) -> _Trained:
    from vec2face.attributes.estimators import load_toy_estimator
    from vec2face.attributes.train import AttributesTrainConfig, train_attributes

    train_dir, train_pool = render_pool(params, ATTRIBUTE_TRAIN_POOL, work, progress)
    heldout_dir, heldout_pool = render_pool(params, ATTRIBUTE_HELDOUT_POOL, work, progress)
    config = load_step_config(AttributesTrainConfig, "attributes_train", params)
    out = work / "attributes"
    done = out / "model.pt"
    summary = None
    if not done.is_file():
        summary = train_attributes(config, train_dir, out, heldout_dir=heldout_dir, resume=True)
    model = load_toy_estimator(done)
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(model.cfg).items()}
    return _Trained(
        kind="attributes",
        parts={"model": model},
        architecture={"name": config.arch, "config": cfg},
        sections={"attributes_train": params.get("attributes_train") or {},
                  "world.seed": _world_seed(params),
                  **_pool_section(params, ATTRIBUTE_TRAIN_POOL),
                  **_pool_section(params, ATTRIBUTE_HELDOUT_POOL)},
        data={"train": [train_pool], "heldout": heldout_pool},
        measure=lambda parts: zf.attribute_figures(parts["model"], heldout_dir),
        training={"recipe": config.model_dump(mode="json"),
                  **({"train_wall_s": summary["train_wall_s"]} if summary else {})},
    )


def _perceptual(params: dict[str, Any], work: Path, progress: bool) -> _Trained:
    from vec2face.perceptual.train import (
        PerceptualTrainConfig,
        load_trunk,
        target_fields,
        train_trunk,
    )

    train_dir, train_pool = render_pool(params, TRUNK_POOL, work, progress)
    heldout_dir, heldout_pool = render_pool(params, TRUNK_HELDOUT_POOL, work, progress)
    config = load_step_config(PerceptualTrainConfig, "perceptual_train", params)
    out = work / "perceptual"
    summary = train_trunk(config, train_dir, out, progress=progress)
    trunk = load_trunk(out)
    return _Trained(
        kind="trunk",
        parts={"model": trunk},
        architecture={"name": config.arch, "config": trunk.cfg.to_dict(),
                      "target_fields": list(target_fields())},
        sections={"perceptual_train": params.get("perceptual_train") or {},
                  "world.seed": _world_seed(params),
                  **_pool_section(params, TRUNK_POOL),
                  **_pool_section(params, TRUNK_HELDOUT_POOL)},
        data={"train": [train_pool], "heldout": heldout_pool},
        measure=lambda parts: zf.trunk_figures(parts["model"], heldout_dir),
        training={"recipe": config.model_dump(mode="json"), "epochs": summary["epochs"],
                  "images": summary["images"], "identities": summary["identities"],
                  "train_wall_s": summary["train_wall_s"]},
    )


@dataclass
class GeneratorData:
    """What a toy generator trains and is measured on, rendered by
    :func:`prepare_generator_data`.

    Attributes:
        lmdb: the training LMDB (subset images, the zoo teacher's per-image features).
        lfw: the toy-LFW ``.bin`` the figures are measured on.
        teacher_dir: the zoo teacher exported as ``vec2face fr train`` writes a backbone.
        teacher: the zoo teacher (eval mode, CPU).
        teacher_meta: its zoo manifest.
        data: the manifest's ``data`` record (pool, subset, features, held-out set).
        sections: the params sections the data came from.
    """

    lmdb: Path
    lfw: Path
    teacher_dir: Path
    teacher: nn.Module
    teacher_meta: dict[str, Any]
    data: dict[str, Any]
    sections: dict[str, Any]


def prepare_generator_data(
    params: dict[str, Any], work: str | os.PathLike, root: str | os.PathLike | None = None,
    progress: bool = True,
) -> GeneratorData:
    """Render (or reuse) a toy generator's training and held-out data in ``work``.

    The webface pool as ``world`` sizes it (``work/world/webface``), the ``subset`` of it
    (``work/generator_data/webface_subset``), the zoo teacher's per-image features (no
    flip) in a training LMDB (``work/generator_data/train.lmdb``) and the ``benchmarks``
    sets (``work/benchmarks``, toy-LFW among them). Every piece already there is reused, so
    an interrupted preparation continues where it stopped.

    Args:
        params: the parsed ``params.yaml`` (``world``, ``subset``, ``benchmarks``).
        work: the folder to render into (a zoo work folder, a long run's folder).
        root: the zoo whose teacher makes the features (default: ``$VEC2FACE_ZOO``, else
            the package's).
        progress: progress bars.
    """
    from vec2face.data.subset import SubsetConfig, make_subset
    from vec2face.fr.extract import write_dataset_features
    from vec2face.zoo.models import export, load

    work, root = Path(work), zoo_root(root)
    params = on_recorded_sets(params, "generator", root)
    pool_dir, pool = render_pool(params, "webface", work, progress)
    bins, bench = render_benchmarks(params, work, progress)
    subset_cfg = load_step_config(SubsetConfig, "subset", params)
    subset_dir = work / "generator_data" / "webface_subset"
    if not (subset_dir / "subset_report.json").is_file():
        make_subset(pool_dir, subset_dir, subset_cfg)
    # the generator learns from the zoo's own teacher: the one every user of the zoo has
    teacher_dir = work / "generator_data" / "teacher"
    export("teacher", teacher_dir, root)
    teacher = load("teacher", root)
    lmdb = work / "generator_data" / "train.lmdb"
    if not lmdb.exists():
        # per-image features (no flip-sum): the generator must see which way a head turns
        write_dataset_features(teacher, subset_dir, work / "generator_data" / "features",
                               flip=False, autocast=True, training_lmdb=lmdb)
    teacher_meta = manifest("teacher", root)
    return GeneratorData(
        lmdb=lmdb,
        lfw=bins / "lfw.bin",
        teacher_dir=teacher_dir,
        teacher=teacher,
        teacher_meta=teacher_meta,
        data={"train": [pool], "subset": subset_cfg.model_dump(mode="json"),
              "features": f"zoo teacher v{teacher_meta['version']} "
                          f"({teacher_meta['sha256'][:12]})",
              "heldout": {"benchmark": "lfw", "pairs": GENERATOR_PAIRS, "benchmarks": bench,
                          "judge": "the zoo's judge"}},
        sections={"subset": params.get("subset") or {}, "world.seed": _world_seed(params),
                  **_pool_section(params, "webface")},
    )


def _zoo_generator_config(params: dict[str, Any], data: GeneratorData):
    """The zoo generator's recipe: the profile's preset < ``zoo_generator``, with the zoo
    teacher; its ``init`` must be scratch."""
    from vec2face.generator.train import generator_train_config

    # the zoo's own recipe: the chain's ``generator`` section warm-starts from this model
    recipe = params.get(GENERATOR_SECTION) or {}
    config = generator_train_config(
        params.get("profile"), {"generator": recipe},
        {"teacher": data.teacher_meta["architecture"]["name"],
         "teacher_checkpoint": str(data.teacher_dir)},
    )
    if config.init != "scratch":
        raise ConfigError(f"params key {GENERATOR_SECTION}.init must be scratch: the zoo's "
                          f"generator is what the chain warm-starts from (got {config.init!r})")
    return config


def _generator_entry(
    generator: nn.Module, disc: nn.Module, disc_name: str, data: GeneratorData,
    root: Path, sections: dict[str, Any], training: dict[str, Any],
) -> _Trained:
    """A generator and its discriminator as a zoo entry, measured on ``data``'s toy-LFW
    pairs by the zoo's judge (the one measurement every zoo generator gets)."""
    from vec2face.zoo.models import load

    return _Trained(
        kind="generator",
        parts={"generator": generator, "discriminator": disc.eval()},
        architecture={
            "name": generator.arch.name,
            "arch": generator.arch.to_dict(),
            "masking": {"train": asdict(generator.train_masking),
                        "generation": asdict(generator.gen_masking)},
            "discriminator": disc_name,
        },
        sections={**sections, **data.sections},
        data=data.data,
        # the judge is loaded only to measure: the training may run while it is being built
        measure=lambda parts: zf.generator_figures(
            parts["generator"], data.teacher, load("judge", root), data.lfw,
            GENERATOR_PAIRS)[0],
        training=training,
    )


def _generator(
    params: dict[str, Any], work: Path, root: Path, progress: bool
) -> _Trained:
    from vec2face.generator.train import fit
    from vec2face.models import build_discriminator
    from vec2face.models.generator import load_generator_checkpoint
    from vec2face.training import load_checkpoint

    data = prepare_generator_data(params, work, root, progress)
    config = _zoo_generator_config(params, data)
    out = work / "generator"
    if not (out / "generator.pt").is_file():
        fit(config, data.lmdb, out, resume=True, progress=progress)
    generator, _ = load_generator_checkpoint(out / "generator.pt")
    disc = build_discriminator(config.discriminator)
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    disc.load_state_dict(last["model_disc"])
    return _generator_entry(
        generator, disc, config.discriminator, data, root,
        {"profile": params.get("profile"),
         GENERATOR_SECTION: params.get(GENERATOR_SECTION) or {}},
        {"recipe": config.model_dump(mode="json"), "epochs": config.epochs},
    )


def _generator_from_checkpoint(
    source: Path, params: dict[str, Any], work: Path, root: Path, progress: bool
) -> _Trained:
    """A long run's checkpoint (generator and discriminator) as the zoo generator, measured
    like a built one. It must have the architecture and discriminator of the zoo recipe
    (what the chain's ``init: zoo`` warm start expects).

    Raises:
        ConfigError: the checkpoint is missing or unreadable, or its generator or
            discriminator differs from the recipe's (names both).
    """
    from vec2face.models import build_discriminator, build_generator
    from vec2face.models.generator import load_generator_checkpoint
    from vec2face.models.state_dict import load_state_dict_strict
    from vec2face.training import load_checkpoint

    state = load_checkpoint(source)
    if "model_disc" not in state or "arch" not in state:
        raise ConfigError(f"zoo build generator --from: {source} is not a generator training "
                          "checkpoint (no 'arch' or 'model_disc')")
    data = prepare_generator_data(params, work, root, progress)
    config = _zoo_generator_config(params, data)
    want = build_generator(config.model, **config.model_args).arch.to_dict()
    theirs = state["arch"]
    saved = state.get("config") or {}
    disc_name = saved.get("discriminator", config.discriminator)
    if theirs != want or disc_name != config.discriminator:
        diff = sorted(k for k in set(want) | set(theirs) if want.get(k) != theirs.get(k))
        raise ConfigError(
            f"zoo build generator --from: {source} holds a '{theirs.get('name', '?')}' "
            f"generator with a '{disc_name}' discriminator, the zoo recipe (profile "
            f"{params.get('profile')}, {GENERATOR_SECTION}) builds '{want['name']}' with "
            f"'{config.discriminator}'"
            + (f" (the generators differ in {', '.join(diff)})" if diff else "")
        )
    generator, _ = load_generator_checkpoint(source)
    disc = build_discriminator(disc_name)
    load_state_dict_strict(disc, state["model_disc"], source=f"{source} (model_disc)")
    run = source.resolve().parent.parent if source.parent.name == "checkpoints" else None
    return _generator_entry(
        generator, disc, disc_name, data, root,
        {"profile": params.get("profile")},
        {"source": "long run", "checkpoint": str(source),
         "run": str(run) if run else None,
         "step": int(state.get("global_step", 0)), "epoch": int(state["epoch"]),
         "step_in_epoch": int(state.get("step_in_epoch", 0)),
         "train_seconds": float(state.get("train_seconds", 0.0)),
         "recipe": saved},
    )


# ----------------------------------------------------------------------------- build


def code_commit() -> str:
    """The library's git commit (``+dirty`` with uncommitted changes in ``vec2face/``), or
    ``unknown`` outside a git checkout."""
    package = Path(__file__).resolve().parents[1]
    # the zoo's own weight files change with every build: they do not make the code dirty
    spec = [".", ":(exclude)zoo/weights"]
    try:
        head = subprocess.run(["git", "-C", str(package), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(package), "status", "--porcelain", "--", *spec],
                               check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _rounded_to_half(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose floating tensors went through float16 (what the zoo file
    would hold), computing in float32."""
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for t in [*twin.parameters(), *twin.buffers()]:
            if t.is_floating_point():
                t.copy_(t.half().float())
    return twin.eval()


def build(
    name: str,
    params: dict[str, Any],
    work: str | os.PathLike,
    into: str | os.PathLike | None = None,
    *,
    command: str,
    force: bool = False,
    progress: bool = True,
    source: str | os.PathLike | None = None,
) -> BuildResult:
    """Train, measure and (if better) export zoo model ``name``.

    With ``source`` (the generator only), a long run's training checkpoint is exported
    instead of training one: measured the same way, kept under the same rule, its manifest
    recording the run, step and recipe it came from.

    Args:
        name: one of :data:`~vec2face.zoo.store.ZOO_NAMES`.
        params: the parsed ``params.yaml``.
        work: folder for rendered pools and training runs (reused when present).
        into: the zoo folder to write (default: ``$VEC2FACE_ZOO``, else the package's).
        command: the command line that runs this build, recorded in the manifest.
        force: write even when the entry's headline figure does not improve.
        progress: progress bars.
        source: a generator training checkpoint to export instead of training.

    Returns:
        The :class:`BuildResult`.

    Raises:
        ConfigError: an unknown name, ``source`` for another model than the generator, or
            a ``source`` of another architecture than the zoo recipe's.
    """
    if name not in ZOO_NAMES:
        raise ConfigError(f"unknown zoo model '{name}'; known: {', '.join(ZOO_NAMES)}")
    if source is not None and name != "generator":
        raise ConfigError(f"zoo build {name} --from: only the generator is exported from a "
                          "training checkpoint")
    root = zoo_root(into)
    work = Path(work)
    start = time.perf_counter()
    params = on_recorded_sets(params, name, root)
    if source is not None:
        trained = _generator_from_checkpoint(Path(source), params, work, root, progress)
    elif name in FR_SECTIONS:
        trained = _fr(name, params, work, progress)
    elif name == "attributes":
        trained = _attributes(params, work, progress)
    elif name == "perceptual":
        trained = _perceptual(params, work, progress)
    else:
        trained = _generator(params, work, root, progress)
    for model in trained.parts.values():
        model.eval()

    full = trained.measure(trained.parts)
    half_parts = {k: _rounded_to_half(m) for k, m in trained.parts.items()}
    half = trained.measure(half_parts)
    moved = zf.out_of_tolerance(trained.kind, full, half)
    use_half = not moved
    try:
        previous = manifest(name, root)
    except ZooError:
        previous = None
    fields = {
        "version": (previous["version"] + 1) if previous else 1,
        "kind": trained.kind,
        "architecture": trained.architecture,
        "parameters": {part: int(sum(p.numel() for p in m.parameters()))
                       for part, m in trained.parts.items()},
        "command": command,
        "params": trained.sections,
        "code_commit": code_commit(),
        "data": trained.data,
        "training": trained.training,
        "figures": half if use_half else full,
        "figures_float32": full,
        "float16_check": "within tolerance" if use_half else
            {k: list(v) for k, v in moved.items()},
        "tolerances": {k: zf.tolerance(trained.kind, k) for k in full},
        "headline": list(zf.HEADLINE[trained.kind]),
        "built": _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat(),
        "build_seconds": round(time.perf_counter() - start, 1),
        "torch": torch.__version__,
    }
    old_figures = previous["figures"] if previous else None
    if previous and not force and not zf.improves(trained.kind, fields["figures"], old_figures):
        head = zf.HEADLINE[trained.kind][0]
        lost = zf.regressions(trained.kind, fields["figures"], old_figures)
        why = "; ".join(f"{k} {new:.4f} falls below {was:.4f} by more than {tol}"
                        for k, (was, new, tol) in lost.items())
        reason = (f"kept the shipped '{name}' v{previous['version']}: " + (why or (
            f"{head} {fields['figures'][head]:.4f} does not improve on "
            f"{old_figures[head]:.4f}")))
        return BuildResult({**fields, "name": name}, False, reason, old_figures)
    states = {part: m.state_dict() for part, m in trained.parts.items()}
    record = write_entry(name, states, fields, root, half=use_half)
    reason = "forced" if force and previous else ("improved" if previous else "new entry")
    return BuildResult(record, True, reason, old_figures)


def figure_summary(figs: dict[str, float]) -> str:
    """One line of figures, for logs."""
    return ", ".join(f"{k} {v:.4g}" for k, v in figs.items() if np.isfinite(v))
