"""``vec2face analyze generator``: what a trained generator does with its input space."""

from __future__ import annotations

from pathlib import Path

import click

from vec2face.cli._common import echo_json


@click.group()
def analyze() -> None:
    """Analyses of trained models (the paper's Figures 7-9, 12, 13 and appendix A.1)."""


@analyze.command("generator")
@click.option("--generator", "generator_path", required=True, type=click.Path(dir_okay=False),
              help="generator checkpoint (ours or the official vec2face_generator.pth)")
@click.option("--teacher", required=True, type=click.Path(),
              help="teacher FR weights (file or fr-train folder): the generator's feature space")
@click.option("--teacher-backbone", default=None, help="teacher backbone name (e.g. tiny, r100)")
@click.option("--identities", "identities_path", default=None, type=click.Path(dir_okay=False),
              help="(N, 512) .npy of identity vectors (default: teacher features of --bins)")
@click.option("--judge", default=None, type=click.Path(),
              help="judge FR weights: scores open-set reconstruction (with --bins / --compare)")
@click.option("--judge-backbone", default=None, help="judge backbone name")
@click.option("--bins", default=None, type=click.Path(file_okay=False),
              help="folder of verification .bin files: rebuild --set's images (appendix A.1)")
@click.option("--set", "set_name", default="lfw", show_default=True, help="which .bin of --bins")
@click.option("--pairs", type=int, default=200, show_default=True,
              help="pairs of --set rebuilt (a multiple of 10)")
@click.option("--compare", default=None, type=click.Path(file_okay=False),
              help="another generator's outputs (image folder) paired with --originals")
@click.option("--originals", default=None, type=click.Path(file_okay=False),
              help="the images --compare was generated from (same relative paths)")
@click.option("--compare-name", default=None, help="legend name of --compare (default: folder)")
@click.option("--num-identities", type=int, default=4, show_default=True,
              help="identities analysed (grid rows)")
@click.option("--steps", type=int, default=6, show_default=True, help="interpolation steps")
@click.option("--repeats", type=int, default=8, show_default=True,
              help="generations of one vector under different seeds")
@click.option("--sweep-dims", default="0,128,256,384", show_default=True,
              help="first coordinate of each swept dimension / 8-wide chunk")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--amp/--no-amp", default=True, show_default=True, help="bf16 autocast")
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", required=True, type=click.Path(file_okay=False), help="output folder")
def generator(
    generator_path, teacher, teacher_backbone, identities_path, judge, judge_backbone, bins,
    set_name, pairs, compare, originals, compare_name, num_identities, steps, repeats,
    sweep_dims, seed, amp, device, out,
) -> None:
    """Interpolation, value scaling, dimension/chunk sweeps, stochasticity and open-set
    reconstruction of a generator, as PNG grids, a histogram and analysis.json in OUT.

    Prints analysis.json's content.
    """
    import numpy as np
    import torch

    from vec2face.data.images import decode_image
    from vec2face.data.verification_bin import read_pair_sample
    from vec2face.errors import ConfigError
    from vec2face.fr.extract import load_trained_backbone
    from vec2face.generator.analysis import (
        AnalysisConfig,
        analyze_generator,
        paired_folder_images,
    )
    from vec2face.generator.quality import embed_images
    from vec2face.models import load_generator_checkpoint

    if (compare is None) != (originals is None):
        raise ConfigError("--compare and --originals go together")
    if identities_path is None and bins is None:
        raise ConfigError("give --identities (identity vectors) or --bins (their source images)")
    try:
        dims = tuple(int(d) for d in sweep_dims.split(","))
    except ValueError:
        msg = f"--sweep-dims: expected comma-separated ints, got {sweep_dims!r}"
        raise ConfigError(msg) from None
    config = AnalysisConfig(identities=num_identities, steps=steps, repeats=repeats,
                            sweep_dims=dims, seed=seed, amp=amp)
    if not Path(generator_path).is_file():
        raise ConfigError(f"generator checkpoint not found: {generator_path}")
    dev = torch.device(device)
    gen, _ = load_generator_checkpoint(generator_path, map_location=dev)
    teacher_model = load_trained_backbone(teacher, teacher_backbone, config_key="--teacher").to(dev)
    judge_model = (
        load_trained_backbone(judge, judge_backbone, config_key="--judge").to(dev)
        if judge is not None else None
    )
    benchmark = None
    if bins is not None:
        path = Path(bins) / f"{set_name}.bin"
        if not path.is_file():
            raise ConfigError(f"{path}: no such verification set (--bins/--set)")
        try:
            blobs, issame = read_pair_sample(path, pairs)
        except ValueError as err:
            raise ConfigError(f"--pairs: {err}") from err
        benchmark = (np.stack([decode_image(b) for b in blobs]), issame)
    if identities_path is not None:
        vectors = np.array(np.load(identities_path, mmap_mode="r")[: max(num_identities, 2)])
    else:
        # the teacher's features of the set's first images (of distinct pairs) stand in
        vectors = embed_images(teacher_model, benchmark[0][0::2][:num_identities], flip=False)
    compared = None
    if compare is not None:
        names, orig, made = paired_folder_images(compare, originals)
        compared = (compare_name or Path(compare).resolve().name, orig, made)
    summary = analyze_generator(
        gen, teacher_model, np.asarray(vectors), out, config,
        judge=judge_model if (benchmark is not None or compared is not None) else None,
        benchmark=benchmark if judge_model is not None else None,
        compare=compared,
    )
    echo_json(summary)
