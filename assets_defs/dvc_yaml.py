"""``dvc.yaml``, generated from :data:`assets_defs.steps.STEPS`.

One stage per step of the chain ``params.yaml`` describes (its off-the-shelf models from the
zoo): the step's command lines, its upstream outputs and code as ``deps``, its exact
``params.yaml`` keys as ``params`` and its output folder as ``outs``, every path under
``${root}`` (the ``root`` key of ``params.yaml``). Run it after changing the table::

    python -m assets_defs.dvc_yaml            # rewrite dvc.yaml
    python -m assets_defs.dvc_yaml --check    # exit 1 when dvc.yaml is not what STEPS gives
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from assets_defs.steps import Step, chain_steps
from assets_defs.versions import PROJECT, param_value
from vec2face.config import read_params
from vec2face.errors import ConfigError
from vec2face.utils.io import atomic_path

#: the params.yaml key holding the output root the stages write under
ROOT_KEY = "root"

HEADER = """\
# Generated from assets_defs/steps.py by `python -m assets_defs.dvc_yaml`: edit the table
# there and regenerate (a test fails when this file differs). The same steps as the Dagster
# assets, as DVC stages calling the CLI with params.yaml; ${root} is params.yaml's root.
"""

_WIDTH = 96


def _folded(text: str, indent: str) -> list[str]:
    """``text`` as a YAML folded block (``>-``) wrapped at the file's width."""
    lines = textwrap.wrap(
        text, _WIDTH - len(indent), break_long_words=False, break_on_hyphens=False
    )
    return [f"{indent}{line}" for line in lines]


def _command(cmd: tuple[str, ...], indent: str) -> list[str]:
    if len(cmd) == 1:
        if len(cmd[0]) + len(indent) + 5 <= _WIDTH:
            return [f"{indent}cmd: {cmd[0]}"]
        return [f"{indent}cmd: >-", *_folded(cmd[0], indent + "  ")]
    lines = [f"{indent}cmd:"]
    for line in cmd:
        if len(line) + len(indent) + 4 <= _WIDTH:
            lines.append(f"{indent}  - {line}")
        else:
            lines += [f"{indent}  - >-", *_folded(line, indent + "    ")]
    return lines


def _stage(step: Step, steps: Mapping[str, Step]) -> list[str]:
    if not step.cmd:
        raise ConfigError(f"step '{step.asset}' has no dvc command (sources: train?)")
    deps = [f"${{{ROOT_KEY}}}/{steps[u].output}" for u in step.upstream] + list(step.code)
    lines = [f"  {step.stage}:", *_command(step.cmd, "    ")]
    for field, values in (
        ("deps", deps),
        ("params", step.params),
        ("outs", [f"${{{ROOT_KEY}}}/{step.output}"]),
    ):
        if values:
            lines += [f"    {field}:", *(f"      - {v}" for v in values)]
    return lines


def render(params: Mapping[str, Any]) -> str:
    """The ``dvc.yaml`` of the chain ``params`` describes.

    Raises:
        ConfigError: ``params`` trains an off-the-shelf model in the chain (dvc.yaml
            describes the zoo's), or lacks a key a stage reads (DVC would refuse the stage).
    """
    sources = params.get("sources") or {}
    trained = sorted(k for k, v in sources.items() if v == "train")
    if trained:
        raise ConfigError(
            f"dvc.yaml describes the chain with every model from the zoo; sources {trained} "
            "are 'train' (run those through Dagster)"
        )
    steps = chain_steps(dict(params))
    for step in steps.values():
        for key in (ROOT_KEY, *step.params):
            try:
                param_value(params, key)
            except KeyError:
                raise ConfigError(
                    f"params.yaml has no '{key}' (read by the step '{step.asset}')"
                ) from None
    lines = [HEADER.rstrip("\n"), "stages:"]
    for step in steps.values():
        lines += _stage(step, steps)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate dvc.yaml from assets_defs.steps.STEPS")
    parser.add_argument("--params", type=Path, default=PROJECT / "params.yaml")
    parser.add_argument("--out", type=Path, default=PROJECT / "dvc.yaml")
    parser.add_argument("--check", action="store_true", help="exit 1 when --out differs")
    args = parser.parse_args(argv)
    text = render(read_params(args.params))
    if args.check:
        current = args.out.read_text() if args.out.is_file() else ""
        if current != text:
            print(f"{args.out} differs from what assets_defs/steps.py gives: "
                  "run python -m assets_defs.dvc_yaml", file=sys.stderr)
            return 1
        return 0
    with atomic_path(args.out) as tmp:
        tmp.write_text(text)
    print(f"wrote {args.out} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["ROOT_KEY", "main", "render"]
