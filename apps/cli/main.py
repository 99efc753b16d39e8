"""Entry point of ``sublens``: assembles the command groups and turns every outcome into an exit code.

Exit codes: 0 success; 2 a user error (bad flag or value, missing file, unknown model; one message naming
the problem and the fix, no traceback); 130 Ctrl-C; 1 an internal error (one line; ``--debug`` or
``SUBLENS_DEBUG=1`` shows the traceback); other codes are passed on from the dashboard's Streamlit.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
import warnings


def _interrupted_while_starting(signum, frame) -> None:
    """Ctrl-C while the CLI is still importing: nothing to clean up, so leave at once without a traceback."""
    sys.stderr.write("interrupted (exit 130)\n")
    os._exit(130)


_MAIN_THREAD = threading.current_thread() is threading.main_thread()
_SIGINT_BEFORE = signal.signal(signal.SIGINT, _interrupted_while_starting) if _MAIN_THREAD else None

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.markup import escape  # noqa: E402

from apps.cli import align, attack, channels, compare, demo, edit, laundry, models, refusal  # noqa: E402
from apps.cli import app as app_cmd  # noqa: E402
from probes.errors import SubspaceLensError  # noqa: E402

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


@app.callback()
def _root(
    debug: bool = typer.Option(
        False, "--debug", help="show the Python traceback of an internal error (also SUBLENS_DEBUG=1)"
    ),
) -> None:
    """subspace-lens: channels, refusal subspaces, representation comparison."""


def _stderr() -> Console:
    return Console(stderr=True)


def _is_click_error(err: BaseException) -> bool:
    """A click usage/parameter error from click itself or from the copy bundled in typer (duck typed)."""
    return all(hasattr(err, a) for a in ("show", "exit_code", "format_message"))


def _debug_wanted(args: list[str]) -> bool:
    """Pop ``--debug`` from anywhere before ``--`` (in place); also on with ``SUBLENS_DEBUG=1``."""
    end = args.index("--") if "--" in args else len(args)
    on = "--debug" in args[:end]
    args[:end] = [a for a in args[:end] if a != "--debug"]
    return on or os.environ.get("SUBLENS_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def _exit_code(rv: object) -> int:
    """What ``app(standalone_mode=False)`` returned: an exit code (typer returns 130 on Ctrl-C) or a value."""
    if isinstance(rv, bool) or not isinstance(rv, int):
        return 0
    return rv


def _internal(err: BaseException, debug: bool) -> int:
    if debug:
        traceback.print_exception(err)
    else:
        msg = escape(f"{type(err).__name__}: {err}".splitlines()[0] if str(err) else type(err).__name__)
        _stderr().print(
            f"[bold red]internal error:[/] {msg} (run with --debug or SUBLENS_DEBUG=1 for the traceback; "
            "please report it)"
        )
    return 1


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Library warnings (small-n CKA, a huge edit α, skipped dims) as one yellow line naming their kind."""
    _stderr().print(f"[bold yellow]warning ({category.__name__}):[/] {escape(str(message))}")


def run_cli(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_wanted(args)
    if not debug:
        warnings.showwarning = _show_warning
    try:
        code = _exit_code(app(args=args, prog_name="sublens", standalone_mode=False))
    except SubspaceLensError as err:
        if debug:
            traceback.print_exception(err)
        _stderr().print(f"[bold red]error:[/] {escape(str(err))}")  # messages may hold [tables]
        return 2
    except (typer.Abort, KeyboardInterrupt):
        code = 130
    except (typer.Exit, SystemExit) as err:
        code = getattr(err, "exit_code", getattr(err, "code", 1))
        code = 0 if code is None else code if isinstance(code, int) else 1
    except Exception as err:
        if not _is_click_error(err):
            return _internal(err, debug)
        err.show()
        return int(err.exit_code)
    if code == 130:
        _stderr().print("[yellow]interrupted[/] (exit 130)")
    return code


if _MAIN_THREAD:
    signal.signal(signal.SIGINT, _SIGINT_BEFORE)  # imports done: Ctrl-C raises KeyboardInterrupt again


def main() -> None:
    """Console entry point of ``sublens``."""
    sys.exit(run_cli())


if __name__ == "__main__":
    main()
