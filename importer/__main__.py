"""The ``metrix-import`` command and ``python -m importer``.

The command line's modules are imported here, inside the guard, because a Ctrl-C while
Python is still loading them would otherwise end in a traceback instead of the exit code
an interrupted run has.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from importer.cli import main as command_line
    except KeyboardInterrupt:
        from importer.errors import ExitCode

        sys.stderr.write("metrix-import: interrupted while starting; nothing was read or sent.\n")
        raise SystemExit(ExitCode.INTERRUPTED) from None
    command_line()


if __name__ == "__main__":
    main()
