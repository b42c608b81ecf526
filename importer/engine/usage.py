"""Every check of a combination of options, in one place, before any work starts."""

from __future__ import annotations

from importer.core.config import Mapping
from importer.edges.transport import check_credentials, check_endpoint
from importer.engine.runner import SendOptions
from importer.errors import CommandLineProblem, UsageProblem


def check_run(
    options: SendOptions,
    mapping: Mapping,
    *,
    duplicates: str,
    state_path: str | None,
    allow_insecure: bool = False,
) -> None:
    """Raise the first problem with how ``run`` was asked to work."""
    if not options.dry_run:
        check_endpoint(options.endpoint, allow_insecure)
        missing = [
            name
            for name, value in (
                ("METRIX_APP_ID", options.app_id),
                ("METRIX_API_KEY", options.api_key),
            )
            if not value
        ]
        if missing:
            raise CommandLineProblem(
                f"no credentials: set {' and '.join(missing)} in the environment (or pass "
                "--app-id/--api-key), or use --dry-run to check everything without sending"
            )
        check_credentials(options.app_id, options.api_key)
    if duplicates == "all" and mapping.time is None:
        raise UsageProblem(
            "--duplicates all sends every row of a user, but the mapping has no `time:` "
            "column, so they would all carry the same time and Metrix may drop all but one "
            "as duplicates. Add `time: {column: ...}` to the mapping, or use "
            "--duplicates last (the default)."
        )
    if options.dry_run and state_path:
        raise UsageProblem(
            "--dry-run does not use --state (a dry run must not mark rows as done); "
            "`metrix-import plan ... --state PATH` shows what a run would send"
        )
    if options.only_changed and not state_path:
        raise UsageProblem(
            "--only-changed needs --state PATH: that file remembers what was delivered"
        )
