"""Commands about sending: run, and plan (what a run would do)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from importer.cli.app import (
    EXIT_CODES_HELP,
    configure,
    default_failures_path,
    friendly_errors,
    main,
    source_options,
    with_options,
    workers_option,
)

DEFAULT_ENDPOINT = "https://entry.metrix.ir/"

F = TypeVar("F", bound=Callable[..., Any])


def _concurrency(ctx: click.Context, param: click.Parameter, value: str) -> int | None:
    """``auto`` (None: adaptive pacing) or a whole number of requests in flight."""
    text = str(value).strip().lower()
    if text == "auto":
        return None
    if text.isdigit() and 1 <= int(text) <= 512:
        return int(text)
    raise click.BadParameter(f"{value!r} is not 'auto' or a number from 1 to 512.")


def send_options(command: F) -> F:
    """Pacing, duplicates and state, shared by run and plan."""
    options = [
        click.option("--concurrency", "-c", default="auto", show_default=True,
                     metavar="auto|N", callback=_concurrency,
                     help="Requests in flight at once: auto finds the endpoint's capacity "
                          "and stays just under it; a number fixes it (1-512)."),
        click.option("--max-concurrency", default=64, show_default=True,
                     type=click.IntRange(1, 512),
                     help="With --concurrency auto: the most requests in flight at once."),
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
    return with_options(command, options)


def connection_options(command: F) -> F:
    """Where to send, with which credentials, and how patiently."""
    options = [
        click.option("--endpoint", envvar="METRIX_ENDPOINT", default=DEFAULT_ENDPOINT,
                     show_default=True, help="Metrix entry URL [env METRIX_ENDPOINT]."),
        click.option("--app-id", envvar="METRIX_APP_ID",
                     help="Application id [env METRIX_APP_ID]."),
        click.option("--api-key", envvar="METRIX_API_KEY", show_envvar=False,
                     help="API key; prefer the METRIX_API_KEY environment variable (a flag is "
                          "visible to other users in `ps`)."),
        click.option("--timeout", default=30.0, show_default=True,
                     type=click.FloatRange(min=0.1),
                     help="Deadline of each whole request (connect, send, the whole answer), "
                          "in seconds."),
        click.option("--max-retries", default=6, show_default=True, type=click.IntRange(0, 100),
                     help="Retries of one request after 408/429/5xx or a network error."),
        click.option("--give-up-after", default=120.0, show_default=True,
                     type=click.FloatRange(min=0.1),
                     help="Stop the run when every request has failed for this many seconds."),
    ]  # fmt: skip
    return with_options(command, options)


def run_output_options(command: F) -> F:
    """What a run remembers and writes."""
    options = [
        click.option("--only-changed", is_flag=True,
                     help="Skip users whose content equals what was last delivered "
                          "(needs --state)."),
        click.option("--restart", is_flag=True,
                     help="With --state: abandon an unfinished run and start over."),
        click.option("--failures", type=click.Path(dir_okay=False),
                     help="Where to write failed rows (default: <file>.failures.csv here)."),
        click.option("--summary-json", type=click.Path(dir_okay=False),
                     help="Write the summary as JSON."),
        click.option("--report", type=click.Path(dir_okay=False),
                     help="Write a self-contained HTML report (counts, charts, reasons, "
                          "the mapping)."),
        click.option("--no-progress", is_flag=True,
                     help="No progress bar and no progress log lines."),
        click.option("--dry-run", is_flag=True, help="Do everything but send."),
        click.option("--log-file", type=click.Path(dir_okay=False),
                     help="Append log lines to this file."),
        click.option("--allow-insecure", is_flag=True,
                     help="Allow plain http to a non-local host."),
        click.option("--verbose", "-v", is_flag=True, help="Log every retry and decision."),
        click.option("--progress-interval", default=10.0, hidden=True, type=float),
        click.option("--grace-seconds", default=5.0, hidden=True, type=float),
    ]  # fmt: skip
    return with_options(command, options)


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("sources", nargs=-1, required=True)
@source_options
@send_options
@connection_options
@run_output_options
@workers_option
@click.option(
    "--engine",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="local: this machine; dask: the partitions of the inputs are read, mapped "
    "and sent by the workers of a Dask cluster (pip install "
    "'metrix-importer[dask]').",
)
@click.option(
    "--scheduler",
    metavar="URL",
    help="With --engine dask: the address of a running scheduler "
    "(tcp://HOST:8786); without it a local cluster of --workers processes "
    "(default 2) is started and stopped by the run.",
)
@click.option("--partition-rows", default=100_000, hidden=True, type=click.IntRange(min=1))
@friendly_errors
def run(
    sources: tuple[str, ...],
    mapping_path: str,
    concurrency: int | None,
    max_concurrency: int,
    rate: float | None,
    duplicates: str,
    state_path: str | None,
    endpoint: str,
    app_id: str | None,
    api_key: str | None,
    timeout: float,
    max_retries: int,
    give_up_after: float,
    only_changed: bool,
    restart: bool,
    failures: str | None,
    summary_json: str | None,
    report: str | None,
    no_progress: bool,
    dry_run: bool,
    log_file: str | None,
    allow_insecure: bool,
    verbose: bool,
    progress_interval: float,
    grace_seconds: float,
    workers: int | None,
    engine: str,
    scheduler: str | None,
    partition_rows: int,
    **reader: Any,
) -> None:
    """Send every valid row of SOURCES (files or quoted globs) to Metrix, one user per
    request. Several sources form one run with one summary and one failure CSV."""
    from importer.cli.logs import setup_logging
    from importer.engine.run import Outputs, run_job
    from importer.engine.runner import SendOptions
    from importer.engine.sending import RetryPolicy

    secret = api_key or ""
    setup_logging(verbose, log_file, secret, progress_bar=not no_progress and sys.stderr.isatty())
    if api_key and _given_on_command_line("api_key"):
        click.echo(
            "warning: an API key given with --api-key is visible to every user of this "
            "machine (`ps`, /proc) and stays in the shell's history; set METRIX_API_KEY in "
            "the environment instead.",
            err=True,
        )
    options = SendOptions(
        endpoint=endpoint, app_id=app_id or "", api_key=secret, concurrency=concurrency,
        max_concurrency=max_concurrency, rate=rate, timeout=timeout, dry_run=dry_run,
        only_changed=only_changed, outage_seconds=give_up_after, grace_seconds=grace_seconds,
    )  # fmt: skip
    outputs = Outputs(
        failures=Path(failures) if failures else default_failures_path(sources[0]),
        summary_json=Path(summary_json) if summary_json else None,
        progress=not no_progress,
        progress_interval=progress_interval,
        report=Path(report) if report else None,
    )
    mapping = configure(mapping_path, **reader)
    retry = RetryPolicy(max_retries=max_retries)
    if engine == "dask":
        result = _run_on_dask(sources, mapping, options, outputs, retry, duplicates,
                              state_path, restart, scheduler, workers, partition_rows,
                              allow_insecure)  # fmt: skip
    else:
        if scheduler:
            raise click.UsageError("--scheduler is for --engine dask.")
        result = run_job(
            sources, mapping, options, outputs, retry=retry, duplicates=duplicates,
            state_path=state_path, restart=restart, workers=workers,
            allow_insecure=allow_insecure,
        )  # fmt: skip
    for note in result.notes:
        click.echo(note)
    click.echo(result.summary.render())
    if result.advice:
        click.echo(f"error: {result.advice}", err=True)
    sys.exit(int(result.exit_code))


def _given_on_command_line(name: str) -> bool:
    """Whether option ``name`` came from the command line (not the environment)."""
    source = click.get_current_context().get_parameter_source(name)
    return source is click.core.ParameterSource.COMMANDLINE


def _run_on_dask(
    sources: tuple[str, ...],
    mapping: Any,
    options: Any,
    outputs: Any,
    retry: Any,
    duplicates: str,
    state_path: str | None,
    restart: bool,
    scheduler: str | None,
    workers: int | None,
    partition_rows: int,
    allow_insecure: bool,
) -> Any:
    from importer.engine.cluster import Cluster, run_on_cluster

    if scheduler and workers is not None:
        raise click.UsageError("give --scheduler or --workers, not both.")
    cluster = Cluster(scheduler, workers or 2, partition_rows)
    return run_on_cluster(sources, mapping, options, outputs, cluster, retry=retry,
                          duplicates=duplicates, allow_insecure=allow_insecure,
                          state_path=state_path, restart=restart)  # fmt: skip


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
    concurrency: int | None,
    max_concurrency: int,
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
    from importer.cli.logs import setup_logging
    from importer.engine.plan import Pace, plan_job

    setup_logging(False, None, "", progress_bar=True, phase_lines=True)
    pace = Pace(concurrency or max_concurrency, rate, assume_latency_ms, concurrency is None)
    result = plan_job(
        sources, configure(mapping_path, **reader), pace,
        duplicates=duplicates, state_path=state_path,
        summary_json=Path(summary_json) if summary_json else None, workers=workers,
    )  # fmt: skip
    click.echo("\n".join(result.notes))
    sys.exit(int(result.exit_code))
