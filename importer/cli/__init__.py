"""The command line (click only): ``main`` is the ``metrix-import`` entry point.

``app`` holds the group and what commands share; each command family has a module
(the sandbox's command lives with the sandbox and is loaded only when used).
"""

from __future__ import annotations

from importer.cli import read, send, state
from importer.cli.app import fail, friendly_errors, main

__all__ = ["fail", "friendly_errors", "main", "read", "send", "state"]
