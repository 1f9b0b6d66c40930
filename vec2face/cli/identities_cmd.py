"""``vec2face identities``: sample the identity vectors of a synthetic dataset."""

from __future__ import annotations

import click

from vec2face.cli._common import echo_json, params_option


@click.group()
def identities() -> None:
    """Identity vectors: far-apart feature vectors, one per synthetic identity."""


@identities.command()
@click.option("--n", "n", type=int, default=None, help="number of identity vectors")
@click.option("--dim", type=int, default=None, help="vector dimension (512)")
@click.option("--threshold", type=float, default=None,
              help="every pair has cosine similarity below this (0.3)")
@click.option("--sampler", type=click.Choice(["pca", "gaussian"]), default=None,
              help="pca: Gaussian in the PCA space of --reference (the paper's); gaussian: N(0, I)")
@click.option("--reference", type=click.Path(dir_okay=False), default=None,
              help="(m, dim) .npy of reference identity centers (pca sampler)")
@click.option("--seed", type=int, default=None, help="seed of the candidate stream")
@click.option("--batch", type=int, default=None, help="candidates checked per block")
@click.option("--max-candidates", type=int, default=None,
              help="candidate budget before giving up (default 20*n + 10000)")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="output .npy (float32 n x dim)")
@click.option("--quiet", is_flag=True, help="no progress bar")
@params_option
def sample(n, dim, threshold, sampler, reference, seed, batch, max_candidates, out, quiet,
           params) -> None:
    """Sample identity vectors into --out (.npy) and print a JSON summary."""
    from vec2face.config import load_step_config
    from vec2face.hsface.identities import IdentitiesConfig, make_identities

    cfg = load_step_config(IdentitiesConfig, "identities", params, {
        "n": n, "dim": dim, "threshold": threshold, "sampler": sampler, "reference": reference,
        "seed": seed, "batch": batch, "max_candidates": max_candidates})
    echo_json(make_identities(cfg, out, progress=not quiet))
