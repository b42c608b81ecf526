"""``preview``: the first request bodies exactly as they would be sent, and the first
invalid rows with their reasons."""

from __future__ import annotations

from dataclasses import dataclass, field

from importer.core.config import Mapping
from importer.core.messages import encode_body
from importer.edges.tables import TableInput
from importer.engine.inputs import Job, expand_inputs
from importer.engine.pipeline import run_start_millis


@dataclass
class Preview:
    """What ``preview`` shows: inputs read, request bodies, invalid rows."""

    descriptions: list[str]
    bodies: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)  # "  row N: reasons"


def preview(source: str | TableInput, mapping: Mapping, rows: int) -> Preview:
    """Read ``source`` only as far as needed for ``rows`` bodies and ``rows`` invalid rows."""
    job = Job(expand_inputs([source], mapping), mapping, run_start_millis())
    shown = Preview(job.descriptions)
    for outcome in job.reading():
        if outcome.mapped is not None:
            if len(shown.bodies) < rows:
                body, _ = encode_body(outcome.mapped)
                shown.bodies.append(body.decode())
        elif len(shown.invalid) < rows:
            where = f"{outcome.source}:{outcome.row}" if outcome.source else outcome.row
            shown.invalid.append(f"  row {where}: {outcome.error}")
        if len(shown.bodies) >= rows and len(shown.invalid) >= rows:
            break
    return shown
