"""Small pieces shared by the command modules."""

from __future__ import annotations

import json
from typing import Any

import click

params_option = click.option(
    "--params", "params", type=click.Path(dir_okay=False), default=None,
    help="params.yaml to read the step's section from (flags given here win).")


def echo_json(obj: Any) -> None:
    """Print ``obj`` as indented JSON on stdout (the machine-readable result of a command)."""
    click.echo(json.dumps(obj, indent=2, default=str))
