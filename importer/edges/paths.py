"""Input paths: a path that exists is that file; only what is not a file is a pattern.

A file may be called ``[table].csv`` or ``data[1].csv``; taking such names as glob
patterns would fail ("no file matches") or, worse, read another file (``data1.csv``).
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Sequence

from importer.errors import SourceError

log = logging.getLogger("metrix_importer")


def expand_paths(patterns: Sequence[str]) -> list[str]:
    """Each argument as a path when it exists, else as a glob (sorted matches, named
    in the log); an argument that is neither stays as given, for the reader to refuse."""
    paths: list[str] = []
    for pattern in patterns:
        if os.path.lexists(pattern) or not glob.has_magic(pattern):
            paths.append(pattern)
            continue
        found = sorted(glob.glob(pattern))
        if not found:
            raise SourceError(
                pattern,
                "no file has this name, and as a pattern it matches no file",
                "Check the path; quote a pattern such as 'exports/*.csv' so the shell "
                "passes it unchanged.",
            )
        log.info("%s matches %d file(s): %s", pattern, len(found), ", ".join(found))
        paths += found
    return paths
