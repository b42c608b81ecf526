"""The command line: parse options, build the pieces, call one function, map errors.

Command bodies stay short; the work lives in the modules they call.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from importer import __version__
from importer.core.config import Mapping, load_mapping
from importer.core.messages import encode_body
from importer.engine.pipeline import run_start_millis
from importer.errors import ExitCode, ImporterError

DEFAULT_ENDPOINT = "https://entry.metrix.ir/"

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES_HELP = (
    "Exit codes: 0 all rows valid/sent · 1 finished, some rows failed · 2 usage or mapping "
    "error · 3 input unreadable · 4 aborted (credentials rejected or endpoint unusable) · "
    "5 state file locked by another run · 130 interrupted."
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
    from importer.core.config import DELIMITERS, delimiter_problem, encoding_problem

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


def default_failures_path(source_path: str) -> Path:
    """``<source file name>.failures.csv`` in the current directory."""
    return Path(Path(source_path).name + ".failures.csv")


@click.group(epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="metrix-import")
def main() -> None:
    """Import customer spreadsheets (CSV, Excel) into Metrix as user profiles."""


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("source", type=click.Path(dir_okay=False))
@source_options
@click.option(
    "--failures",
    type=click.Path(dir_okay=False),
    help="Where to write failed rows (default: <file>.failures.csv here).",
)
@click.option("--summary-json", type=click.Path(dir_okay=False), help="Write the summary as JSON.")
@workers_option
@friendly_errors
def validate(
    source: str,
    mapping_path: str,
    failures: str | None,
    summary_json: str | None,
    workers: int | None,
    **reader: Any,
) -> None:
    """Read and map every row of SOURCE without sending anything."""
    from importer.engine.job import validate_job

    mapping = configure(mapping_path, **reader)
    failure_path = Path(failures) if failures else default_failures_path(source)
    summary, described = validate_job(source, mapping, failure_path, workers)
    for line in described:
        click.echo(f"Read {line}", err=True)
    click.echo(summary.render())
    if summary_json:
        summary.write_json(summary_json)
    sys.exit(int(ExitCode.ROWS_FAILED if summary.rows_invalid else ExitCode.OK))


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("source", type=click.Path(dir_okay=False))
@source_options
@click.option(
    "--rows",
    "-n",
    default=5,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many request bodies (and invalid rows) to show.",
)
@friendly_errors
def preview(source: str, mapping_path: str, rows: int, **reader: Any) -> None:
    """Print the first request bodies exactly as they would be sent (JSON lines on
    stdout), then the first invalid rows and why (on stderr)."""
    from importer.edges.duplicates import no_plan
    from importer.engine.job import Job, expand_inputs

    mapping = configure(mapping_path, **reader)
    job = Job(expand_inputs([source], mapping.source.sheet), mapping, run_start_millis())
    for line in job.descriptions:
        click.echo(f"Reading {line}", err=True)
    shown = 0
    invalid: list[str] = []
    for outcome in job.outcomes(None, no_plan("all")):
        if outcome.mapped is not None:
            if shown < rows:
                body, _ = encode_body(outcome.mapped)
                click.echo(body.decode())
                shown += 1
        elif len(invalid) < rows:
            where = f"{outcome.source}:{outcome.row}" if outcome.source else outcome.row
            invalid.append(f"  row {where}: {outcome.error}")
        if shown >= rows and len(invalid) >= rows:
            break
    if invalid:
        click.echo(f"First {len(invalid)} invalid rows:", err=True)
        click.echo("\n".join(invalid), err=True)
    elif shown == 0:
        click.echo("The file has no data rows.", err=True)


def send_options(command: F) -> F:
    """Pacing, duplicates and state, shared by run and plan."""
    options = [
        click.option("--concurrency", "-c", default=16, show_default=True,
                     type=click.IntRange(1, 512),
                     help="Requests in flight at once. Metrix publishes no limit; 16-64 is "
                          "polite, raise it when latency is high."),
        click.option("--rate", type=click.FloatRange(min=0, min_open=True),
                     help="At most this many requests per second (default: no cap)."),
        click.option("--duplicates", type=click.Choice(["last", "first", "all", "error"]),
                     default="last", show_default=True,
                     help="Rows sharing a customer id: keep the last, the first, send all "
                          "(needs a time: column), or fail them all."),
        click.option("--state", "state_path", type=click.Path(dir_okay=False),
                     help="SQLite file that makes the run resumable and remembers what was "
                          "delivered (for --only-changed)."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("sources", nargs=-1, required=True)
@source_options
@send_options
@click.option(
    "--endpoint",
    envvar="METRIX_ENDPOINT",
    default=DEFAULT_ENDPOINT,
    show_default=True,
    help="Metrix entry URL [env METRIX_ENDPOINT].",
)
@click.option("--app-id", envvar="METRIX_APP_ID", help="Application id [env METRIX_APP_ID].")
@click.option(
    "--api-key",
    envvar="METRIX_API_KEY",
    show_envvar=False,
    help="API key; prefer the METRIX_API_KEY environment variable (a flag is "
    "visible to other users in `ps`).",
)
@click.option(
    "--timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Connect and read timeout of each request, in seconds.",
)
@click.option(
    "--max-retries",
    default=6,
    show_default=True,
    type=click.IntRange(0, 100),
    help="Retries of one request after 408/429/5xx or a network error.",
)
@click.option(
    "--give-up-after",
    default=120.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Stop the run when every request has failed for this many seconds.",
)
@click.option(
    "--only-changed",
    is_flag=True,
    help="Skip users whose content equals what was last delivered (needs --state).",
)
@click.option(
    "--restart", is_flag=True, help="With --state: abandon an unfinished run and start over."
)
@click.option(
    "--failures",
    type=click.Path(dir_okay=False),
    help="Where to write failed rows (default: <file>.failures.csv here).",
)
@click.option("--summary-json", type=click.Path(dir_okay=False), help="Write the summary as JSON.")
@click.option("--no-progress", is_flag=True, help="No progress bar and no progress log lines.")
@click.option("--dry-run", is_flag=True, help="Do everything but send.")
@click.option("--log-file", type=click.Path(dir_okay=False), help="Append log lines to this file.")
@click.option("--allow-insecure", is_flag=True, help="Allow plain http to a non-local host.")
@click.option("--verbose", "-v", is_flag=True, help="Log every retry and decision.")
@click.option("--progress-interval", default=10.0, hidden=True, type=float)
@click.option("--grace-seconds", default=5.0, hidden=True, type=float)
@workers_option
@friendly_errors
def run(
    sources: tuple[str, ...],
    mapping_path: str,
    endpoint: str,
    app_id: str | None,
    api_key: str | None,
    concurrency: int,
    rate: float | None,
    timeout: float,
    max_retries: int,
    give_up_after: float,
    duplicates: str,
    state_path: str | None,
    only_changed: bool,
    restart: bool,
    failures: str | None,
    summary_json: str | None,
    no_progress: bool,
    dry_run: bool,
    log_file: str | None,
    allow_insecure: bool,
    verbose: bool,
    progress_interval: float,
    grace_seconds: float,
    workers: int | None,
    **reader: Any,
) -> None:
    """Send every valid row of SOURCES (files or quoted globs) to Metrix, one user per
    request. Several sources form one run with one summary and one failure CSV."""
    from importer.edges.transport import check_endpoint
    from importer.engine.job import Outputs, run_job, setup_logging
    from importer.engine.runner import RunOptions

    secret = api_key or ""
    setup_logging(verbose, log_file, secret, progress_bar=not no_progress and sys.stderr.isatty())
    if not dry_run:
        check_endpoint(endpoint, allow_insecure)
        if not app_id or not api_key:
            missing = " and ".join(
                name
                for name, value in (("METRIX_APP_ID", app_id), ("METRIX_API_KEY", api_key))
                if not value
            )
            raise click.UsageError(
                f"no credentials: set {missing} in the environment (or pass --app-id/--api-key), "
                "or use --dry-run to check everything without sending"
            )
    mapping = configure(mapping_path, **reader)
    options = RunOptions(
        endpoint=endpoint, app_id=app_id or "", api_key=secret, concurrency=concurrency,
        rate=rate, timeout=timeout, max_retries=max_retries, dry_run=dry_run,
        only_changed=only_changed, outage_seconds=give_up_after, grace_seconds=grace_seconds,
        progress_interval=min(progress_interval, 1.0),
    )  # fmt: skip
    outputs = Outputs(
        failures=Path(failures) if failures else default_failures_path(sources[0]),
        summary_json=Path(summary_json) if summary_json else None,
        progress=not no_progress,
        progress_interval=progress_interval,
    )
    result = run_job(
        sources, mapping, options, outputs, sheet=mapping.source.sheet, duplicates=duplicates,
        state_path=state_path, restart=restart, workers=workers,
    )  # fmt: skip
    for note in result.notes:
        click.echo(note)
    click.echo(result.summary.render())
    if result.advice:
        click.echo(f"error: {result.advice}", err=True)
    sys.exit(int(result.exit_code))


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("sources", nargs=-1, required=True)
@source_options
@send_options
@click.option(
    "--assume-latency-ms",
    default=50.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Per-request time used for the estimate.",
)
@click.option("--summary-json", type=click.Path(dir_okay=False), help="Write the plan as JSON.")
@workers_option
@friendly_errors
def plan(
    sources: tuple[str, ...],
    mapping_path: str,
    concurrency: int,
    rate: float | None,
    duplicates: str,
    state_path: str | None,
    assume_latency_ms: float,
    summary_json: str | None,
    workers: int | None,
    **reader: Any,
) -> None:
    """Before a big migration: read SOURCES once and say what a run would do (rows,
    invalid, duplicates, new/changed/unchanged users) and how long it would take.
    Sends nothing."""
    from importer.engine.job import plan_job, setup_logging

    setup_logging(False, None, "", progress_bar=True)
    mapping = configure(mapping_path, **reader)
    result = plan_job(
        sources, mapping, sheet=mapping.source.sheet, duplicates=duplicates,
        state_path=state_path, concurrency=concurrency, rate=rate,
        latency_ms=assume_latency_ms, summary_json=Path(summary_json) if summary_json else None,
        workers=workers,
    )  # fmt: skip
    click.echo("\n".join(result.notes))
    sys.exit(int(result.exit_code))


@main.command("init-mapping", epilog=EXIT_CODES_HELP)
@click.argument("source", type=click.Path(dir_okay=False))
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="Write the draft here (default: print it).",
)
@click.option("--sheet", help="Excel sheet: a name, a 0-based index, or all (default: the first).")
@click.option("--encoding", default="auto", help="auto (default) or a codec name.")
@click.option("--delimiter", default="auto", help="auto (default), ',', ';', 'tab' or '|'.")
@click.option("--header-row", default=1, type=click.IntRange(min=1), help="1-based header row.")
@click.option(
    "--sample",
    default=2000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Rows to study, spread through the whole file.",
)
@click.option("--force", is_flag=True, help="Overwrite --output if it exists.")
@friendly_errors
def init_mapping(
    source: str,
    output: str | None,
    sheet: str | None,
    encoding: str,
    delimiter: str,
    header_row: int,
    sample: int,
    force: bool,
) -> None:
    """Draft a commented mapping for SOURCE from its header and a sample of its rows."""
    from importer.core.config import DELIMITERS, delimiter_problem, encoding_problem
    from importer.core.infer import draft_mapping
    from importer.edges.readers import open_source
    from importer.engine.pipeline import sample_rows

    if problem := encoding_problem(encoding) or delimiter_problem(delimiter):
        raise click.UsageError(problem)
    if output and Path(output).exists() and not force:
        raise click.UsageError(f"{output} exists; choose another --output or add --force")
    opened = open_source(
        source,
        sheet=sheet,
        encoding=encoding,
        delimiter=DELIMITERS.get(delimiter, delimiter),
        header_row=header_row,
    )
    rows = sample_rows(opened, sample)
    draft = draft_mapping(
        opened.header,
        rows,
        source_name=source,
        sheet=opened.sheet if opened.kind == "excel" else None,
    )
    if draft.user_id is None:
        fail(
            f"{source}: no column can identify customers ({'; '.join(draft.notes)}). "
            "Check the header row (--header-row) and the sheet (--sheet).",
            ExitCode.USAGE,
        )
    text = _with_reader_options(
        draft.yaml,
        opened.encoding if encoding != "auto" else None,
        delimiter if delimiter != "auto" else None,
        header_row,
    )
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
    target = output or "the mapping"
    click.echo(
        f"Drafted {target} from {len(rows):,} sampled rows: customer id column "
        f"'{draft.user_id}', {len(draft.fields)} Metrix fields, {len(draft.custom)} custom "
        f"attributes, {len(draft.notes)} lines marked CHECK.",
        err=True,
    )
    for note in draft.notes:
        click.echo(f"  CHECK {note}", err=True)
    if output:
        click.echo(f"Next: metrix-import validate {source} --mapping {output}", err=True)


def _with_reader_options(
    text: str, encoding: str | None, delimiter: str | None, header_row: int
) -> str:
    """The draft with the reader options the user had to give (so validate needs none)."""
    from importer.core.config import DELIMITERS

    extra = ""
    if encoding:
        extra += f"  encoding: {encoding}\n"
    if delimiter:
        shown = "tab" if DELIMITERS.get(delimiter) == "\t" else json.dumps(delimiter)
        extra += f"  delimiter: {shown}\n"
    text = text.replace("  header_row: 1\n", f"  header_row: {header_row}\n" + extra, 1)
    return text


@main.command("state")
@click.argument("path", type=click.Path(dir_okay=False))
@friendly_errors
def state_command(path: str) -> None:
    """Show what a --state file holds: runs, sources, counts, and whether one can resume."""
    from importer.edges.state import describe_state

    click.echo(describe_state(path))


def _register_sandbox() -> None:
    from importer.sandbox.cli import sandbox

    main.add_command(sandbox)


_register_sandbox()
