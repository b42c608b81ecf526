"""Commands that only read: validate, preview, init-mapping."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from importer.cli.app import (
    EXIT_CODES_HELP,
    configure,
    default_failures_path,
    friendly_errors,
    main,
    report_option,
    source_options,
    workers_option,
)
from importer.errors import ExitCode


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("source", type=click.Path(dir_okay=False))
@source_options
@click.option(
    "--failures",
    type=click.Path(dir_okay=False),
    help="Where to write failed rows (default: <file>.failures.csv here).",
)
@click.option("--summary-json", type=click.Path(dir_okay=False), help="Write the summary as JSON.")
@report_option
@workers_option
@friendly_errors
def validate(
    source: str,
    mapping_path: str,
    failures: str | None,
    summary_json: str | None,
    report: str | None,
    workers: int | None,
    **reader: Any,
) -> None:
    """Read and map every row of SOURCE without sending anything."""
    from importer.cli.logs import setup_logging
    from importer.engine.reporting import save_report
    from importer.engine.validate import validate_job

    setup_logging(False, None, "", progress_bar=True, phase_lines=True)
    mapping = configure(mapping_path, **reader)
    failure_path = Path(failures) if failures else default_failures_path(source)
    summary, described = validate_job(
        source, mapping, failure_path, workers, Path(summary_json) if summary_json else None
    )
    for line in described:
        click.echo(f"Read {line}", err=True)
    click.echo(summary.render())
    if summary_json:
        summary.write_json(summary_json)
    if report:
        save_report(Path(report), summary, mapping, described)
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
    from importer.engine.preview import preview as take_preview

    shown = take_preview(source, configure(mapping_path, **reader), rows)
    for line in shown.descriptions:
        click.echo(f"Reading {line}", err=True)
    for body in shown.bodies:
        click.echo(body)
    if shown.invalid:
        click.echo(f"First {len(shown.invalid)} invalid rows:", err=True)
        click.echo("\n".join(shown.invalid), err=True)
    elif not shown.bodies:
        click.echo("The file has no data rows.", err=True)


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
    from importer.core.config import SourceOptions
    from importer.engine.draft import draft_for

    reader = SourceOptions(
        sheet=sheet, encoding=encoding, delimiter=delimiter, header_row=header_row
    )
    drafted = draft_for(source, reader, sample=sample, output=output, force=force)
    draft = drafted.draft
    if output:
        from importer.edges.outputs import output_error
        from importer.edges.report import write_atomic

        try:  # via a temporary file and a rename: never through a symlink at the path
            write_atomic(Path(output), draft.yaml)
        except OSError as exc:
            raise output_error(Path(output), exc, "the mapping") from None
    else:
        click.echo(draft.yaml, nl=False)
    target = output or "the mapping"
    click.echo(
        f"Drafted {target} from {drafted.sampled:,} sampled rows: customer id column "
        f"'{draft.user_id}', {len(draft.fields)} Metrix fields, {len(draft.custom)} custom "
        f"attributes, {len(draft.notes)} line{'' if len(draft.notes) == 1 else 's'} marked CHECK.",
        err=True,
    )
    for note in draft.notes:
        click.echo(f"  CHECK {note}", err=True)
    if output:
        click.echo(f"Next: metrix-import validate {source} --mapping {output}", err=True)
