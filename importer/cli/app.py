"""The command group and what every command shares: reader options, error handling.

Command bodies stay short: parse options, call one engine function, print, exit.
Commands live in one module per family (read, send, state) and import the engine
only when they run, so ``metrix-import --version`` stays instant.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from importer import __version__
from importer.errors import CommandLineProblem, ExitCode, ImporterError

if TYPE_CHECKING:
    from importer.core.config import Mapping

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES_HELP = (
    "Exit codes: 0 all rows valid/sent · 1 finished, some rows failed · 2 usage or mapping "
    "error · 3 input unreadable · 4 aborted (credentials rejected or endpoint unusable) · "
    "5 state file locked by another run · 6 an output cannot be written (disk full, "
    "read-only folder) · 130 interrupted."
)


def fail(message: str, code: ExitCode) -> None:
    """Print an error for a person and exit with ``code``."""
    click.echo(f"error: {message}", err=True)
    sys.exit(int(code))


def friendly_errors(command: F) -> F:
    """Turn importer errors into a message and an exit code; never show a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CommandLineProblem as exc:
            raise click.UsageError(str(exc)) from None
        except ImporterError as exc:
            fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(int(ExitCode.INTERRUPTED))
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:
            if os.environ.get("METRIX_DEBUG"):
                raise
            fail(
                f"internal error ({type(exc).__name__}: {exc}). This is a bug in "
                "metrix-importer; run again with METRIX_DEBUG=1 to see the details and "
                "please report them.",
                ExitCode.INTERNAL,
            )

    return wrapper  # type: ignore[return-value]


def source_options(command: F) -> F:
    """The reader options shared by every command that reads a file."""
    options = [
        click.option(
            "--mapping",
            "-m",
            "mapping_path",
            required=True,
            type=click.Path(dir_okay=False),
            help="The column-mapping YAML file.",
        ),
        click.option(
            "--sheet", help="Excel sheet: a name, a 0-based index, or all (default: the first)."
        ),
        click.option("--encoding", help="auto (default) or a codec name such as windows-1256."),
        click.option("--delimiter", help="auto (default), ',', ';', 'tab' or '|'."),
        click.option(
            "--header-row",
            type=click.IntRange(min=1),
            help="1-based line/row of the header (default 1).",
        ),
    ]
    return with_options(command, options)


def with_options(command: F, options: Sequence[Callable[[Any], Any]]) -> F:
    """Decorate ``command`` with ``options``, listed as they appear in --help."""
    for option in reversed(options):
        command = option(command)
    return command


def workers_option(command: F) -> F:
    """--workers, shared by the commands that map whole files."""
    return click.option(
        "--workers", type=click.IntRange(min=0), default=None,
        help="Processes that map rows in parallel (default: by core count and input "
             "size; 0 maps in the main process).",
    )(command)  # fmt: skip


def configure(mapping_path: str, **overrides: Any) -> Mapping:
    """Load the mapping (all problems at once) and apply the CLI's reader overrides."""
    from importer.core.config import (
        DELIMITERS,
        delimiter_problem,
        encoding_problem,
        load_mapping,
    )

    mapping = load_mapping(mapping_path)
    encoding, delimiter = overrides.get("encoding"), overrides.get("delimiter")
    if encoding and (problem := encoding_problem(encoding)):
        raise click.BadParameter(problem, param_hint="--encoding")
    if delimiter and (problem := delimiter_problem(delimiter)):
        raise click.BadParameter(problem, param_hint="--delimiter")
    return mapping.with_source(
        sheet=overrides.get("sheet"),
        encoding=encoding,
        delimiter=DELIMITERS.get(delimiter, delimiter) if delimiter else None,
        header_row=overrides.get("header_row"),
    )


def report_option(command: F) -> F:
    """--report, shared by validate and run."""
    return click.option(
        "--report", type=click.Path(dir_okay=False),
        help="Write a self-contained HTML report (counts, charts, reasons, the mapping).",
    )(command)  # fmt: skip


_FAILURE_NAME = re.compile(r"^(?P<base>.+)\.failures(?:-(?P<number>\d+))?\.csv$")


def default_failures_path(source_path: str) -> Path:
    """``<source file name>.failures.csv`` in the current directory; the failure file of
    a failure file counts up instead of growing: ``x.csv.failures-2.csv``, ``-3``..."""
    name = Path(source_path).name
    found = _FAILURE_NAME.match(name)
    if found is None:
        return Path(name + ".failures.csv")
    number = int(found["number"] or 1) + 1
    return Path(f"{found['base']}.failures-{number}.csv")


class _Commands(click.Group):
    """The group; the sandbox and the page, programs of their own that load aiohttp's
    server, are imported only when asked for (or listed), so every other command starts
    fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), "sandbox", "ui"])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name == "sandbox":
            from importer.sandbox.cli import sandbox

            return sandbox
        if cmd_name == "ui":  # the page, also a program of its own
            from importer.ui.cli import ui

            return ui
        return super().get_command(ctx, cmd_name)


@click.group(
    cls=_Commands,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="metrix-import")
def main() -> None:
    """Import customer spreadsheets (CSV, Excel) into Metrix as user profiles."""
