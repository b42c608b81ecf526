"""``init-mapping``: draft a commented mapping from a file's header and a sample."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from importer.core.config import DELIMITERS, SourceOptions, delimiter_problem, encoding_problem
from importer.core.infer import Draft, draft_mapping
from importer.edges.inputs import open_input
from importer.edges.outputs import check_outputs
from importer.engine.pipeline import sample_rows
from importer.errors import CommandLineProblem, UsageProblem


@dataclass(frozen=True)
class Drafted:
    """A draft mapping and what it was drafted from."""

    draft: Draft
    sampled: int  # rows studied


def draft_for(
    source: str,
    reader: SourceOptions,
    *,
    sample: int,
    output: str | None = None,
    force: bool = False,
) -> Drafted:
    """Draft a mapping for ``source`` read with ``reader`` (``auto`` where not given)
    from up to ``sample`` rows spread through the file."""
    if problem := encoding_problem(reader.encoding) or delimiter_problem(reader.delimiter):
        raise CommandLineProblem(problem)
    if output and Path(output).exists() and not force:
        raise CommandLineProblem(f"{output} exists; choose another --output or add --force")
    if output:
        check_outputs([("--output", Path(output))], [source])
    delimiter = DELIMITERS.get(reader.delimiter, reader.delimiter)
    opened = open_input(
        source,
        sheet=reader.sheet,
        encoding=reader.encoding,
        delimiter=delimiter,
        header_row=reader.header_row,
    )
    rows = sample_rows(opened, sample)
    needed = SourceOptions(
        encoding=opened.encoding if reader.encoding != "auto" and opened.encoding else "auto",
        delimiter=delimiter,
        header_row=reader.header_row,
    )
    draft = draft_mapping(
        opened.header,
        rows,
        source_name=source,
        sheet=opened.sheet if opened.kind == "excel" else None,
        reader=needed,
    )
    if draft.user_id is None:
        raise UsageProblem(
            f"{source}: no column can identify customers ({'; '.join(draft.notes)}). "
            "Check the header row (--header-row) and the sheet (--sheet)."
        )
    return Drafted(draft, len(rows))
