"""``metrix-import ui``: the local web page for the person with the spreadsheet."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from importer.errors import ExitCode, ImporterError

_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str) -> int:
    """``2GiB``, ``500M``, ``1048576`` → bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*", text, re.IGNORECASE)
    if not match:
        raise ValueError(f"{text!r} is not a size; use e.g. 2GiB, 500MiB or a number of bytes")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _size(ctx: click.Context, param: click.Parameter, value: str) -> int:
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command(name="ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on; 0 picks a free one.")  # fmt: skip
@click.option("--no-browser", is_flag=True, help="Print the URL; do not open a browser.")
@click.option("--allow-remote", is_flag=True,
              help="Allow a --host other than loopback (the token is still required).")  # fmt: skip
@click.option("--max-upload", default="2GiB", show_default=True, callback=_size,
              help="Largest upload the page accepts (bigger: type its path).")  # fmt: skip
@click.option("--runs-dir", default="metrix-import-runs", show_default=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Where imports keep their state, failure CSV, summary and report.")  # fmt: skip
def ui(
    host: str, port: int, no_browser: bool, allow_remote: bool, max_upload: int, runs_dir: Path
) -> None:
    """A local web page: open a spreadsheet, match its columns, preview, save the mapping
    and import, into a local sandbox or into Metrix. The URL it prints carries a token."""
    from importer.core.hosts import is_loopback
    from importer.ui.server import UiConfig, serve

    if not is_loopback(host) and not allow_remote:
        click.echo(
            f"error: --host {host} would let other machines reach a page that handles customer "
            "data and an API key; add --allow-remote if that is really what you want (the "
            "token in the URL is still required)",
            err=True,
        )
        sys.exit(int(ExitCode.USAGE))
    config = UiConfig(host, port, allow_remote, not no_browser, max_upload, runs_dir)
    try:
        serve(config, sys.stdout)
    except ImporterError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        pass
