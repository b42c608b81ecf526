"""The ``state`` command: what a --state file holds."""

from __future__ import annotations

import click

from importer.cli.app import friendly_errors, main


@main.command("state")
@click.argument("path", type=click.Path(dir_okay=False))
@friendly_errors
def state_command(path: str) -> None:
    """Show what a --state file holds: runs, sources, counts, and whether one can resume."""
    from importer.edges.state import describe_state

    click.echo(describe_state(path))
