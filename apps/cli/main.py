"""Entry point of ``sublens``: assembles the command groups and prints user errors without a traceback."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from apps.cli import align, attack, channels, compare, demo, edit, laundry, models, refusal
from apps.cli import app as app_cmd
from probes.errors import SubspaceLensError

app = typer.Typer(
    help="subspace-lens: channels, refusal subspaces, representation comparison.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(models.app, name="models")
app.add_typer(laundry.app, name="laundry")
app.add_typer(channels.app, name="channels")
app.add_typer(compare.app, name="compare")
app.add_typer(refusal.app, name="refusal")
app.add_typer(attack.app, name="attack")
app.add_typer(edit.app, name="edit")
app.add_typer(align.app, name="align")
app.command("demo")(demo.demo)
app.command("app")(app_cmd.app)


def main() -> None:
    """Run the CLI; a :class:`SubspaceLensError` prints its message in red and exits with code 2."""
    try:
        app(standalone_mode=False)
    except SubspaceLensError as err:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(err))}")  # messages may hold [tables]
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        Console(stderr=True).print("[yellow]interrupted[/]")
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except Exception as err:  # click usage errors
        import click

        if isinstance(err, click.ClickException):
            err.show()
            sys.exit(err.exit_code)
        raise


if __name__ == "__main__":
    main()
