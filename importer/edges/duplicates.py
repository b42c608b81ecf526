"""Finding rows that share a customUserId, on inputs larger than memory.

One pass reads only the user id of every row into a temporary SQLite file; SQLite
then groups them on disk. Memory stays flat; what comes back is small: the rows to
skip (or fail) as bit sets, and counts for the summary.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from importer.core.rowset import RowSet

POLICIES = ("last", "first", "all", "error")
_BATCH = 50_000

# (source label, data row number, user id or None) for every data row, in input order.
IdStream = Iterable[tuple[str, int, str | None]]


@dataclass
class DuplicatePlan:
    """What to do with duplicated users' rows."""

    policy: str
    skip: dict[str, RowSet] = field(default_factory=dict)  # skipped as duplicates
    error: dict[str, dict[int, int]] = field(default_factory=dict)  # row -> rows of its user
    rows: int = 0  # data rows seen (an exact total for progress)
    duplicate_users: int = 0
    duplicate_rows: int = 0  # rows skipped or failed because of duplication
    examples: list[tuple[str, int]] = field(default_factory=list)  # (user id, rows)

    def is_skipped(self, label: str, row: int) -> bool:
        found = self.skip.get(label)
        return found is not None and row in found

    def error_count(self, label: str, row: int) -> int:
        return self.error.get(label, {}).get(row, 0)

    def as_dict(self) -> dict[str, object]:
        """For the JSON summary."""
        return {
            "policy": self.policy,
            "users": self.duplicate_users,
            "rows": self.duplicate_rows,
            "examples": [{"customUserId": u, "rows": n} for u, n in self.examples],
        }


def plan_duplicates(ids: IdStream, policy: str, examples: int = 10) -> DuplicatePlan:
    """Read every (label, row, user id) once and decide which rows are duplicates."""
    plan = DuplicatePlan(policy)
    with tempfile.TemporaryDirectory(prefix="metrix-dups-") as folder:
        db = sqlite3.connect(Path(folder) / "ids.db", isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("PRAGMA cache_size=-32000")  # 32 MB, whatever the input size
            db.execute(
                "CREATE TABLE ids (uid TEXT NOT NULL, src INTEGER, row INTEGER, seq INTEGER)"
            )
            labels: dict[str, int] = {}
            plan.rows = _load(db, ids, labels)
            _decide(db, plan, {i: label for label, i in labels.items()}, examples)
        finally:
            db.close()
    return plan


def _load(db: sqlite3.Connection, ids: IdStream, labels: dict[str, int]) -> int:
    rows = 0
    batch: list[tuple[str, int, int, int]] = []
    db.execute("BEGIN")
    for label, row, user_id in ids:
        rows += 1
        if user_id is None:
            continue  # the row fails on its own; it cannot duplicate anything
        source = labels.setdefault(label, len(labels))
        batch.append((user_id, source, row, rows))
        if len(batch) >= _BATCH:
            db.executemany("INSERT INTO ids VALUES (?, ?, ?, ?)", batch)
            batch.clear()
    db.executemany("INSERT INTO ids VALUES (?, ?, ?, ?)", batch)
    db.execute("COMMIT")
    return rows


def _decide(
    db: sqlite3.Connection, plan: DuplicatePlan, labels: dict[int, str], examples: int
) -> None:
    db.execute(
        "CREATE TABLE dup AS SELECT uid, COUNT(*) AS n, MIN(seq) AS first, MAX(seq) AS last "
        "FROM ids GROUP BY uid HAVING COUNT(*) > 1"
    )
    plan.duplicate_users = db.execute("SELECT COUNT(*) FROM dup").fetchone()[0]
    if not plan.duplicate_users:
        return
    plan.examples = [
        (uid, n)
        for uid, n in db.execute(f"SELECT uid, n FROM dup ORDER BY n DESC, first LIMIT {examples}")
    ]
    keep = {"last": "dup.last", "first": "dup.first", "error": "-1"}[plan.policy]
    for source, row, n in db.execute(
        f"SELECT ids.src, ids.row, dup.n FROM ids JOIN dup ON ids.uid = dup.uid "
        f"WHERE ids.seq != {keep}"
    ):
        label = labels[source]
        plan.duplicate_rows += 1
        if plan.policy == "error":
            plan.error.setdefault(label, {})[row] = n
        else:
            plan.skip.setdefault(label, RowSet()).add(row)


def plan_to_text(plan: DuplicatePlan) -> str:
    """The plan as JSON, to be remembered for an input that has not changed since."""
    return json.dumps(
        {
            "policy": plan.policy,
            "rows": plan.rows,
            "users": plan.duplicate_users,
            "duplicate_rows": plan.duplicate_rows,
            "examples": plan.examples,
            "skip": {
                label: base64.b64encode(rows.to_bytes()).decode("ascii")
                for label, rows in plan.skip.items()
            },
            "error": {label: list(rows.items()) for label, rows in plan.error.items()},
        },
        ensure_ascii=False,
    )


def plan_from_text(text: str) -> DuplicatePlan | None:
    """The plan ``plan_to_text`` wrote; None when the text is not one (then the id pass
    runs again)."""
    try:
        data = json.loads(text)
        return DuplicatePlan(
            policy=str(data["policy"]),
            skip={
                str(label): RowSet.from_bytes(base64.b64decode(bits, validate=True))
                for label, bits in data["skip"].items()
            },
            error={
                str(label): {int(row): int(n) for row, n in rows}
                for label, rows in data["error"].items()
            },
            rows=int(data["rows"]),
            duplicate_users=int(data["users"]),
            duplicate_rows=int(data["duplicate_rows"]),
            examples=[(str(user), int(n)) for user, n in data["examples"]],
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def no_plan(policy: str) -> DuplicatePlan:
    """``--duplicates all``: every row is sent, nothing to find."""
    return DuplicatePlan(policy)


def id_stream(
    sources: Iterable[tuple[str, Callable[[], Iterator[tuple[int, list[str], str | None]]]]],
    user_id_of: Callable[[str, list[str]], str | None],
) -> IdStream:
    """(label, row, user id) for every record of every source, in order."""
    for label, open_records in sources:
        for row, cells, problem in open_records():
            yield label, row, (None if problem is not None else user_id_of(label, cells))
