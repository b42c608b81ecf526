"""metrix-importer: turn spreadsheet rows into Metrix user messages and send them.

The Python API (``importer.validate``, ``preview``, ``run``, ``load_mapping``,
``Mapping``) is imported on first use, so ``import importer`` and the command line's
start-up stay light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from importer.api import (
        Mapping,
        RunAborted,
        failures_frame,
        load_mapping,
        preview,
        run,
        validate,
    )

_API = {
    "Mapping",
    "RunAborted",
    "failures_frame",
    "load_mapping",
    "preview",
    "run",
    "validate",
}

__all__ = ["Mapping", "RunAborted", "failures_frame", "load_mapping", "preview", "run", "validate"]


def __getattr__(name: str) -> Any:
    if name in _API:
        from importer import api

        return getattr(api, name)
    raise AttributeError(f"module 'importer' has no attribute {name!r}")
