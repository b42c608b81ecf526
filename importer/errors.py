"""One exception tree for the whole importer.

Context (file, row, column, value, HTTP status) lives in attributes so that reports
read attributes, never parsed strings. Every message ends with what to do next.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes; each is documented in the README and covered by a test."""

    OK = 0  # every row valid / sent
    ROWS_FAILED = 1  # finished, some rows failed: see the failure CSV
    USAGE = 2  # bad command line or mapping
    INPUT_UNREADABLE = 3  # the input file cannot be read at all
    ABORTED = 4  # credentials rejected or endpoint unusable
    LOCKED = 5  # another run holds the state file
    OUTPUT_FAILED = 6  # an output (failure CSV, summary, state) cannot be written
    INTERNAL = 70  # a bug in the importer (EX_SOFTWARE)
    INTERRUPTED = 130  # Ctrl-C / SIGTERM


class ImporterError(Exception):
    """Base of every error the importer raises on purpose."""

    exit_code: ExitCode = ExitCode.USAGE


@dataclass(frozen=True)
class MappingProblem:
    """One problem in a mapping file, located by its YAML path."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class MappingError(ImporterError):
    """The mapping file is invalid; carries every problem found, not just the first."""

    exit_code = ExitCode.USAGE

    def __init__(
        self,
        source: str,
        problems: list[MappingProblem],
        advice: str = "Fix these in the mapping file and run the command again.",
    ) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        super().__init__(f"{source}: the mapping has {count} {noun}:\n{lines}\n{advice}")


class SourceError(ImporterError):
    """The input file cannot be read at all (missing, empty, not a spreadsheet, ...)."""

    exit_code = ExitCode.INPUT_UNREADABLE

    def __init__(self, path: str, problem: str, hint: str = "") -> None:
        self.path = path
        self.problem = problem
        self.hint = hint
        super().__init__(f"{path}: {problem}" + (f"\n{hint}" if hint else ""))


class ConversionError(ValueError):
    """A cell's text cannot become the value its field needs.

    ``reason`` is short and stable (used to group counts in the summary);
    ``hint`` says what to do. The row builder adds the field and column.
    """

    def __init__(self, reason: str, value: str = "", hint: str = "") -> None:
        self.reason = reason
        self.value = value
        self.hint = hint
        super().__init__(reason)


class UsageProblem(ImporterError):
    """A combination of options that cannot work."""

    exit_code = ExitCode.USAGE


class StateError(ImporterError):
    """The state file cannot be used as asked."""

    exit_code = ExitCode.USAGE


class StateLocked(ImporterError):
    """Another run holds the state file."""

    exit_code = ExitCode.LOCKED


class OutputError(ImporterError):
    """An output cannot be written: a read-only folder, a full disk, a path that is an
    input. Raised before the first request when it can be known then; mid-run, the run
    stops keeping everything already acknowledged (resumable with ``--state``)."""

    exit_code = ExitCode.OUTPUT_FAILED

    def __init__(self, path: str, problem: str, hint: str = "") -> None:
        self.path = path
        self.problem = problem
        self.hint = hint
        super().__init__(f"{path}: {problem}" + (f"\n{hint}" if hint else ""))


class Interrupted(ImporterError):
    """Ctrl-C or SIGTERM before the run's first request: nothing to account for."""

    exit_code = ExitCode.INTERRUPTED


class EndpointError(ImporterError):
    """The endpoint URL is unusable as given."""


class RedirectRefused(ImporterError):
    """The endpoint answered a POST with a redirect: every request would be, so the run
    stops (exit 4) rather than send the key and customer data somewhere not named."""

    exit_code = ExitCode.ABORTED

    def __init__(self, endpoint: str, status: int, location: str) -> None:
        self.endpoint = endpoint
        self.status = status
        self.location = location
        super().__init__(
            f"the endpoint {endpoint} redirected the request (HTTP {status}) to "
            f"{location or 'an unnamed place'}; redirects are not followed, so that the API "
            "key and customer data go only to the endpoint given. Check --endpoint "
            "(or METRIX_ENDPOINT): if that address is really the one to use, pass it as "
            "--endpoint"
        )


class SandboxError(ImporterError):
    """The sandbox cannot start: the port is taken, the database cannot be opened..."""

    exit_code = ExitCode.ABORTED


class TransportError(Exception):
    """No HTTP answer: connection refused or reset, timeout, connection dropped.

    Not an ImporterError: the runner retries it, it never reaches the user as is.
    """

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind)
        self.kind = kind
        self.detail = detail

    def describe(self) -> str:
        return f"{self.kind} ({self.detail})" if self.detail else self.kind


class CommandLineProblem(UsageProblem):
    """A usage problem the command line shows with the command's usage line."""


class MissingExtra(ImporterError):
    """An optional dependency is needed for this input and is not installed."""

    exit_code = ExitCode.USAGE

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"{purpose} needs {module.split('.')[0]}, which is not installed. "
            f"Install it with: pip install 'metrix-importer[{extra}]'"
        )
