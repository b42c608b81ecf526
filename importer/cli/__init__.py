"""The command line (click only): ``main`` is the ``metrix-import`` entry point.

``app`` holds the group and what commands share; each command family has a module.
"""

from __future__ import annotations

from importer.cli import read, send, state
from importer.cli.app import fail, friendly_errors, main

__all__ = ["fail", "friendly_errors", "main", "read", "send", "state"]


def _register_sandbox() -> None:
    from importer.sandbox.cli import sandbox

    main.add_command(sandbox)


_register_sandbox()
