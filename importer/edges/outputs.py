"""The files a command writes, checked before the first row is used.

Every output (failure CSV, summary JSON, state file, report) must be creatable before
anything is sent, must not be one of the inputs (compared by inode, so a symlink or a
second name for the input is caught too), and is written to a temporary file in the
same folder and renamed into place, so a symlink planted at the output path is replaced,
never written through.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from importer.errors import OutputError, UsageProblem

# How much the check writes: a disk with less room than this free fails before the run.
PROBE_BYTES = 64 * 1024


def os_problem(exc: OSError) -> str:
    """An OSError in words a person can act on."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "the disk is full"
    if exc.errno == errno.EROFS:
        return "the file system is read-only"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (the folder is not writable for this user)"
    return exc.strerror or str(exc)


def space_hint(path: Path, error: int | None = errno.ENOSPC) -> str:
    """What to do when ``path`` cannot be written (for the OSError number ``error``)."""
    folder = path.parent.resolve() if path.parent != Path("") else Path.cwd()
    if error in (errno.ENOSPC, errno.EDQUOT):
        fix = f"Free some space on the disk holding {folder}"
    elif error in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = f"Make {folder} writable for this user"
    elif error == errno.ENOENT:
        fix = f"Create the folder {path.parent}"
    else:
        return "Give another path for this output."
    return f"{fix}, or give another path for this output."


def output_error(path: Path, exc: OSError, what: str = "") -> OutputError:
    """``exc`` while writing ``path``, as an error that names the path and the remedy."""
    label = what or "it"
    return OutputError(
        str(path), f"cannot write {label}: {os_problem(exc)}", space_hint(path, exc.errno)
    )


def check_outputs(outputs: Sequence[tuple[str, Path]], inputs: Sequence[str]) -> None:
    """Refuse outputs that are inputs (or each other), and prove each can be created.

    ``outputs`` are (option name, path) pairs, e.g. ("--failures", Path(...)).
    """
    identities: dict[tuple[int, int], str] = {}
    for name in inputs:
        try:
            info = os.stat(name)
        except OSError:
            continue
        identities[(info.st_dev, info.st_ino)] = name
    seen: dict[Path, str] = {}
    for what, path in outputs:
        _not_an_input(what, path, identities)
        key = Path(os.path.abspath(path))
        if key in seen:
            raise UsageProblem(
                f"{what} and {seen[key]} name the same file ({path}); give each its own path"
            )
        seen[key] = what
        probe_folder(what, path)


def _not_an_input(what: str, path: Path, identities: dict[tuple[int, int], str]) -> None:
    try:
        info = os.stat(path)
    except OSError:
        return
    source = identities.get((info.st_dev, info.st_ino))
    if source is not None:
        raise UsageProblem(
            f"{what} {path} is the input file {source}: writing it would destroy the input "
            "while it is read. Give the output another path."
        )
    if path.is_dir():
        raise OutputError(str(path), f"{what} names a folder", "Give a file path.")


def probe_folder(what: str, path: Path) -> None:
    """Create the output's folder if needed and write a scratch file there."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, scratch = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".check")
    except OSError as exc:
        raise output_error(path, exc, what) from None
    try:
        with os.fdopen(handle, "wb") as out:
            # File systems reserve space when written to (no fsync needed, which
            # would make every start wait on a busy disk).
            out.write(b"\0" * PROBE_BYTES)
            out.flush()
    except OSError as exc:
        raise output_error(path, exc, what) from None
    finally:
        Path(scratch).unlink(missing_ok=True)


def open_partial(path: Path) -> tuple[int, Path]:
    """A new file beside ``path`` to write into before ``finish_partial`` renames it.

    ``O_EXCL`` and ``O_NOFOLLOW``: a file (or a symlink) already at the partial name is
    removed first, never written through.
    """
    partial = path.with_name(path.name + ".partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    if partial.is_symlink() or partial.exists():
        partial.unlink()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    return os.open(partial, flags, 0o644), partial


def finish_partial(partial: Path, path: Path) -> None:
    """Rename the finished partial file into place (replacing a symlink, not its target)."""
    os.replace(partial, path)
