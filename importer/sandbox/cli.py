"""``metrix-import sandbox``: run the local Metrix-compatible server (see importer.sandbox.server).

Also runs stand-alone: ``python -m importer.sandbox --port 0``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from importer.errors import SandboxError
from importer.sandbox.server import (
    DEFAULT_API_KEY,
    DEFAULT_APP_ID,
    DEFAULT_HOST,
    DEFAULT_PORT,
    Faults,
    SandboxConfig,
    dump_profiles,
    parse_latency,
    run,
)

if TYPE_CHECKING:  # click.ParamType is generic only for type checkers in click < 8.2
    _FloatParam = click.ParamType[object, float]
    _RangeParam = click.ParamType[object, tuple[float, float]]
else:
    _FloatParam = _RangeParam = click.ParamType


class _Probability(_FloatParam):
    name = "rate"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            rate = float(str(value))
        except ValueError:
            rate = math.nan
        if not 0.0 <= rate <= 1.0:  # also rejects nan
            self.fail(f"{value!r} is not a probability between 0 and 1 (e.g. 0.05).", param, ctx)
        return rate


class _PerSecond(_FloatParam):
    name = "requests/s"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            rate = float(str(value))
        except ValueError:
            rate = math.nan
        if not (math.isfinite(rate) and rate > 0):
            self.fail(f"{value!r} is not a positive number of requests per second.", param, ctx)
        return rate


class _Latency(_RangeParam):
    name = "ms|min-max"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> tuple[float, float]:
        if isinstance(value, tuple):  # already converted
            low, high = value
            return float(low), float(high)
        try:
            return parse_latency(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _not_empty(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value:
        raise click.BadParameter("must not be empty.")
    return value


@click.command(name="sandbox")
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Port to listen on; 0 picks a free one (see the ready line).",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite database (created if missing). Default: a fresh temporary file.",
)
@click.option(
    "--app-id",
    default=DEFAULT_APP_ID,
    show_default=True,
    envvar="METRIX_SANDBOX_APP_ID",
    callback=_not_empty,
    help="Application id the server accepts.",
)
@click.option(
    "--api-key",
    default=DEFAULT_API_KEY,
    envvar="METRIX_SANDBOX_API_KEY",
    callback=_not_empty,
    help="API key the server accepts (default: sandbox-key); only ever shown masked.",
)
@click.option(
    "--latency-ms", type=_Latency(), default=None, help="Delay each POST: 20, or a range 5-50."
)
@click.option(
    "--fail-rate", type=_Probability(), default=0.0, help="Share of POSTs answered 500/503."
)
@click.option(
    "--rate-limit", type=_PerSecond(), default=None, help="Requests/s beyond which POST gets 429."
)
@click.option(
    "--no-retry-after",
    is_flag=True,
    default=False,
    help="Answer --rate-limit's 429s without a Retry-After header.",
)
@click.option(
    "--capacity",
    type=click.IntRange(min=1),
    default=None,
    help="Process at most N POSTs at once (latency included); the rest queue.",
)
@click.option(
    "--drop-rate",
    type=_Probability(),
    default=0.0,
    help="Share of POSTs stored, then closed without an answer.",
)
@click.option(
    "--reject-key-after",
    type=click.IntRange(min=0),
    default=None,
    help="Answer 403 to every POST after the first N.",
)
@click.option("--seed", type=int, default=None, help="Seed for the random faults.")
@click.option(
    "--dump",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=None,
    help="Export the merged profiles of --db as JSON lines to this file ('-': stdout), "
    "then exit without serving.",
)
def sandbox(
    host: str,
    port: int,
    db: Path | None,
    app_id: str,
    api_key: str,
    latency_ms: tuple[float, float] | None,
    fail_rate: float,
    rate_limit: float | None,
    no_retry_after: bool,
    capacity: int | None,
    drop_rate: float,
    reject_key_after: int | None,
    seed: int | None,
    dump: Path | None,
) -> None:
    """Run a local Metrix-compatible server for demos, tests and rehearsals.

    Prints one ready line with its URL, then serves until Ctrl-C or SIGTERM.
    """
    try:
        if dump is not None:
            if db is None:
                raise click.UsageError("--dump needs --db PATH: the sandbox database to export.")
            _dump(db, dump)
            return
        faults = Faults(
            latency_ms=latency_ms,
            fail_rate=fail_rate,
            rate_limit=rate_limit,
            drop_rate=drop_rate,
            reject_key_after=reject_key_after,
            seed=seed,
            capacity=capacity,
            retry_after=not no_retry_after,
        )
        run(SandboxConfig(host, port, db, app_id, api_key, faults))
    except SandboxError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(int(exc.exit_code))


def _dump(db: Path, target: Path) -> None:
    if str(target) == "-":
        dump_profiles(db, sys.stdout)
        return
    try:
        with target.open("w", encoding="utf-8", newline="\n") as out:
            count = dump_profiles(db, out)
    except OSError as exc:
        raise SandboxError(f"{target}: cannot write the dump ({exc.strerror or exc}).") from exc
    click.echo(f"dumped {count} user profile(s) to {target}", err=True)


if __name__ == "__main__":
    sandbox()
