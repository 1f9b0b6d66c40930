"""``vec2face zoo``: list, verify and build the toy world's off-the-shelf models."""

from __future__ import annotations

import shlex
import sys

import click

from vec2face.cli._common import echo_json


def _command_line(verb: str, args: tuple[str, ...]) -> str:
    """The zoo command as typed, recorded in a manifest (rebuilt from its arguments when
    called from Python rather than a shell)."""
    typed = [i + 1 for i in range(len(sys.argv) - 1) if sys.argv[i:i + 2] == ["zoo", verb]]
    # sys.argv is another program's (a test runner's) unless it holds "zoo VERB"
    argv = sys.argv[typed[0]:] if typed else [verb, *args]
    return "vec2face zoo " + " ".join(shlex.quote(a) for a in argv)


@click.group()
def zoo() -> None:
    """The toy zoo: pretrained teacher, judge, attribute estimator, perceptual trunk and generator."""


@zoo.command(name="list")
@click.option("--zoo-dir", type=click.Path(file_okay=False), default=None,
              help="zoo folder (default: $VEC2FACE_ZOO, else the package's)")
@click.option("--json", "as_json", is_flag=True, help="print the manifests as JSON")
def list_cmd(zoo_dir, as_json) -> None:
    """Show each zoo model: version, architecture, size, dtype and held-out figures."""
    from vec2face import zoo as z

    names = z.available(zoo_dir)
    if as_json:
        echo_json({n: z.manifest(n, zoo_dir) for n in names})
        return
    click.echo(f"zoo: {z.zoo_root(zoo_dir)}")
    for name in z.ZOO_NAMES:
        if name not in names:
            click.echo(f"  {name:<11} (not built: vec2face zoo build {name})")
            continue
        m = z.manifest(name, zoo_dir)
        arch = m["architecture"].get("name", "?")
        params = sum(m["parameters"].values())
        figs = ", ".join(f"{k} {v:.4g}" for k, v in m["figures"].items())
        click.echo(f"  {name:<11} v{m['version']} {arch} {params / 1e6:.2f}M params "
                   f"{m['dtype']} {m['bytes'] / 2**20:.1f} MiB  {figs}")


@zoo.command()
@click.argument("names", nargs=-1)
@click.option("--zoo-dir", type=click.Path(file_okay=False), default=None,
              help="zoo folder (default: $VEC2FACE_ZOO, else the package's)")
@click.option("--work", type=click.Path(file_okay=False), default="outputs/zoo", show_default=True,
              help="folder for the rendered held-out data (reused)")
@click.option("--quiet", is_flag=True, help="no progress bars")
@click.pass_context
def verify(ctx, names, zoo_dir, work, quiet) -> None:
    """Check sha256 and re-measure the recorded figures of NAMES (default: all built).

    Exits 1 when a figure moved beyond its tolerance.
    """
    from vec2face import zoo as z
    from vec2face.zoo.verify import verify as run_verify

    failed = []
    for name in names or z.available(zoo_dir):
        result = run_verify(name, work, zoo_dir, progress=not quiet)
        for fig, (rec, got, tol) in result.moved.items():
            click.echo(f"{name}: {fig} recorded {rec:.4f}, measured {got:.4f} "
                       f"(tolerance {tol})", err=True)
        click.echo(f"{name}: {'ok' if result.ok else 'FAILED'} "
                   f"({len(result.recorded)} figures re-measured)")
        if not result.ok:
            failed.append(name)
    if failed:
        ctx.exit(1)


@zoo.command()
@click.argument("name")
@click.option("--params", "params", type=click.Path(dir_okay=False), default="params.yaml",
              show_default=True, help="params.yaml whose sections hold the recipes")
@click.option("--work", type=click.Path(file_okay=False), default="outputs/zoo", show_default=True,
              help="folder for rendered pools and training runs (reused: a build resumes)")
@click.option("--zoo-dir", type=click.Path(file_okay=False), default=None,
              help="zoo folder to write (default: $VEC2FACE_ZOO, else the package's)")
@click.option("--force", is_flag=True, help="replace the entry even if its figures do not improve")
@click.option("--from", "source", type=click.Path(dir_okay=False), default=None,
              help="generator only: export this training checkpoint (a long run's "
              "DIR/checkpoints/last.pt) instead of training, measured and kept alike")
@click.option("--quiet", is_flag=True, help="no progress bars")
def build(name, params, work, zoo_dir, force, source, quiet) -> None:
    """Train zoo model NAME from the toy world with fixed seeds and export it (or, with
    --from, export a long run's generator checkpoint)."""
    from vec2face.config import read_params
    from vec2face.zoo.build import build as run_build

    command = _command_line("build", (name,))
    result = run_build(name, read_params(params), work, zoo_dir, command=command, force=force,
                       progress=not quiet, source=source)
    echo_json({"written": result.written, "reason": result.reason,
               "previous_figures": result.previous, **result.manifest})


@zoo.command()
@click.argument("names", nargs=-1, required=True)
@click.option("--params", "params", type=click.Path(dir_okay=False), default="params.yaml",
              show_default=True, help="params.yaml whose benchmarks section names the sets")
@click.option("--work", type=click.Path(file_okay=False), default="outputs/zoo", show_default=True,
              help="folder for the rendered benchmark sets (reused)")
@click.option("--zoo-dir", type=click.Path(file_okay=False), default=None,
              help="zoo folder to write (default: $VEC2FACE_ZOO, else the package's)")
@click.option("--quiet", is_flag=True, help="no progress bars")
def rescore(names, params, work, zoo_dir, quiet) -> None:
    """Measure the FR entries NAMES (teacher, judge) on the benchmark sets params.yaml
    makes and record those figures, so the main job reuses them instead of scoring the
    model again. The weights stay; the figures they replace stay in the manifest."""
    from vec2face.config import read_params
    from vec2face.zoo.verify import rescore as run_rescore

    command = _command_line("rescore", names)
    chain = read_params(params)
    out = {}
    for name in names:
        record = run_rescore(name, chain, work, zoo_dir, command=command, progress=not quiet)
        out[name] = {"figures": record["figures"],
                     "earlier_figures": record["earlier_figures"][-1]["figures"],
                     "benchmarks": record["data"]["heldout"]["benchmarks"]}
    echo_json(out)


@zoo.command()
@click.argument("name")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="folder to write the model to, in the layout the chain's steps read")
@click.option("--zoo-dir", type=click.Path(file_okay=False), default=None,
              help="zoo folder (default: $VEC2FACE_ZOO, else the package's)")
def export(name, out, zoo_dir) -> None:
    """Verify zoo model NAME and write it as its training step would (backbone.pt +
    backbone.json, model.pt, or generator.pt + discriminator.pt) with its manifest."""
    from vec2face import zoo as z

    path = z.export(name, out, zoo_dir)
    m = z.manifest(name, zoo_dir)
    echo_json({"name": name, "version": m["version"], "sha256": m["sha256"], "path": str(path),
               "figures": m["figures"]})
