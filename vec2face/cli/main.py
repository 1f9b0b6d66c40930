"""Entry point of the ``vec2face`` command.

Command groups are imported lazily (``module:attribute``) so ``vec2face --help`` and
light commands do not pay for importing torch.
"""

from __future__ import annotations

import importlib
import sys

import click

from vec2face.errors import Vec2FaceError

# command name -> "module:attribute" of a click command or group
_COMMANDS: dict[str, str] = {
    "toyfaces": "vec2face.cli.toyfaces_cmd:toyfaces",
    "identities": "vec2face.cli.identities_cmd:identities",
    "benchmarks": "vec2face.cli.benchmarks_cmd:benchmarks",
    "data": "vec2face.cli.data_cmd:data",
    "subset": "vec2face.cli.subset_cmd:subset",
    "fr": "vec2face.cli.fr_cmd:fr",
    "generator": "vec2face.cli.generator_cmd:generator",
    "attributes": "vec2face.cli.attributes_cmd:attributes",
    "report": "vec2face.cli.report_cmd:report",
    "generate": "vec2face.cli.generate_cmd:generate",
    "analyze": "vec2face.cli.analyze_cmd:analyze",
    "zoo": "vec2face.cli.zoo_cmd:zoo",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=_LazyGroup)
@click.version_option(package_name="vec2face")
def cli() -> None:
    """Vec2Face: synthetic face-recognition datasets, models and benchmarks."""


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; library errors print one line and exit with status 2."""
    try:
        # outside standalone mode click returns a command's ``ctx.exit(code)`` (a check
        # that failed, e.g. ``zoo verify``) instead of exiting
        rc = cli.main(args=argv, prog_name="vec2face", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (Vec2FaceError, FileNotFoundError, FileExistsError, NotADirectoryError) as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except OSError as exc:
        # a full disk or a read-only folder: the message names the errno and the path
        click.echo(f"error: {exc}", err=True)
        return 2
    return rc if isinstance(rc, int) and not isinstance(rc, bool) else 0


if __name__ == "__main__":
    sys.exit(main())
