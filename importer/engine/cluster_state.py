"""``--state`` and ``--only-changed`` for ``run --engine dask``.

The coordinator owns the one state file; workers never open it (a remote scheduler's
workers could not see it). For each partition the coordinator ships what the worker
needs from it, as a ``PieceState``:

- the rows of the partition finished before a resume, so the worker skips them;
- with ``--only-changed``, the fingerprints last delivered for the partition's users
  (the worker names them first, reading the partition for its user ids only), so the
  worker answers "already delivered with this content?" as a single-machine run does.

The worker counts into a ``PieceLedger``, which keeps what it settled (sent with the
fingerprints, failed, skipped). About once a second a ``Reporter`` puts what is new in
the run's inbox (a Dask queue, kept by the scheduler); the coordinator records it in
the state file as it arrives, and the rest when the partition completes, marking the
partition done when every row of it is. A coordinator that dies loses at most the
last second of each partition in flight: the next run with the same ``--state`` skips
the partitions done, skips the rows recorded, and sends the rest with the same message
ids (the run's start time is in the state file), which Metrix drops if they arrived.
The state file is the one a single-machine run keeps, so either engine resumes the
other's run.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from importer.core.config import Mapping
from importer.core.rowset import RowSet
from importer.edges.report import FailureWriter, Summary
from importer.edges.state import StateStore
from importer.engine.inputs import Input
from importer.engine.run import begin_state
from importer.engine.tally import Tally

log = logging.getLogger("metrix_importer")

# (source, row, user id, content fingerprint, raw fingerprint)
Sent = tuple[str, int, str, bytes, bytes]
# (source, row, stage, error, cells, keys)
Failed = tuple[str, int, str, str, list[str], list[str]]


@dataclass
class PieceState:
    """What a worker needs from the state file for one partition."""

    done: RowSet | None = None  # rows finished before this (resumed) run
    # With --only-changed: (content, raw row) fingerprints last delivered, by user.
    known: dict[str, tuple[bytes, bytes]] | None = None

    def skip(self, source: str, row: int) -> bool:
        return self.done is not None and row in self.done

    @property
    def has_done(self) -> bool:
        return self.done is not None and len(self.done) > 0

    def unchanged_content(self, pairs: Sequence[tuple[str, bytes]]) -> set[str]:
        """The users among ``pairs`` last delivered with the same content."""
        return self._same(pairs, 0)

    def unchanged_raw(self, pairs: Sequence[tuple[str, bytes]]) -> set[str]:
        """The users among ``pairs`` last delivered from exactly the same raw row."""
        return self._same(pairs, 1)

    def _same(self, pairs: Sequence[tuple[str, bytes]], which: int) -> set[str]:
        known = self.known or {}
        return {user for user, value in pairs if user in known and known[user][which] == value}


@dataclass
class Settled:
    """What a worker settled in its partition, for the coordinator's state file."""

    sent: list[Sent] = field(default_factory=list)
    failed: list[Failed] = field(default_factory=list)
    skipped: list[tuple[str, int, str]] = field(default_factory=list)


class PieceLedger:
    """The worker's ``Ledger``: answers from its ``PieceState``, keeps what it settles."""

    def __init__(self, state: PieceState) -> None:
        self.state = state
        self.settled = Settled()  # what is not in the inbox yet

    def unreported(self) -> tuple[Batch, tuple[int, int, int]]:
        """What is not in the inbox yet, and the marks to pass to ``reported``."""
        settled = self.settled
        batch = (list(settled.sent), list(settled.failed), list(settled.skipped))
        return batch, (len(settled.sent), len(settled.failed), len(settled.skipped))

    def reported(self, marks: tuple[int, int, int]) -> None:
        """The rows up to ``marks`` are in the inbox: forget them."""
        settled = self.settled
        del settled.sent[: marks[0]], settled.failed[: marks[1]], settled.skipped[: marks[2]]

    def is_done(self, source: str, row: int) -> bool:
        return self.state.skip(source, row)

    def unchanged_users(self, pairs: Sequence[tuple[str, bytes]]) -> set[str]:
        return self.state.unchanged_content(pairs)

    def record_sent(
        self, source: str, row: int, user_id: str, fingerprint: bytes, raw: bytes
    ) -> None:
        self.settled.sent.append((source, row, user_id, fingerprint, raw))

    def record_failed(
        self, source: str, row: int, stage: str, error: str, cells: list[str], keys: Sequence[str]
    ) -> None:
        self.settled.failed.append((source, row, stage, error, list(cells), list(keys)))

    def record_skipped(self, source: str, row: int, reason: str) -> None:
        self.settled.skipped.append((source, row, reason))

    def checkpoint(self) -> None:
        pass  # the Reporter sends what is new, about once a second


# What a worker reports on the way: (sent, failed, skipped), as lists and tuples (the
# inbox carries msgpack, not pickles).
Batch = tuple[list[Sent], list[Failed], list[tuple[str, int, str]]]


class Reporter:
    """On a worker: puts what its partition settled in the run's inbox about once a
    second, and once more when the partition ends. A report that cannot be made
    (the scheduler busy or gone) stays for the next one or the partition's result."""

    def __init__(self, ledger: PieceLedger, inbox: str, every: float = 1.0) -> None:
        distributed: Any = importlib.import_module("distributed")
        self.ledger = ledger
        self.inbox = distributed.Queue(inbox)  # made here, on the task's thread
        self.every = every
        self.ended = asyncio.Event()

    async def run(self) -> None:
        while not self.ended.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ended.wait(), self.every)
            batch, marks = self.ledger.unreported()
            if not any(batch):
                continue
            try:
                await asyncio.to_thread(self.inbox.put, batch)
            except Exception as exc:  # the partition's result carries it then
                log.debug("could not report to the coordinator: %s", exc)
                continue
            self.ledger.reported(marks)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the scheduler may be gone: nothing to free
            self.inbox.close()


class Inbox:
    """On the coordinator: the run's inbox, whose reports go to the state file."""

    def __init__(self, client: Any, name: str) -> None:
        distributed: Any = importlib.import_module("distributed")
        self.queue = distributed.Queue(name, client=client)

    def drain(self, state: ClusterState) -> None:
        """Record every report waiting (without waiting for one)."""
        batches = self.queue.get(batch=True)
        for sent, failed, skipped in batches:
            state.record_rows(Settled(list(sent), list(failed), list(skipped)))
        if batches:
            state.store.checkpoint(force=True)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # a client already closed frees it anyway
            self.queue.close()


class ClusterState:
    """The coordinator's state file for one run on a cluster."""

    def __init__(self, path: str, inputs: list[Input], mapping: Mapping, restart: bool) -> None:
        self.store = StateStore(path)
        try:
            self.run_time_ms = begin_state(self.store, inputs, mapping, restart, path)
            assert self.store.run is not None
            self.resumed = self.store.run.resumed
            self.parts = self.store.parts_done() if self.resumed else {}
            # What was done before this run, read now: the partitions record theirs as
            # they complete.
            self.restored = self.store.restored() if self.resumed else None
            self.prior_failures = list(self.store.prior_failures()) if self.resumed else []
        except BaseException:
            self.store.close()
            raise

    def piece(
        self, label: str, first: int, last: int | None, users: list[str] | None
    ) -> PieceState:
        """The state a partition of ``label`` holding rows ``first``..``last`` needs;
        ``users``: its user ids, with --only-changed."""
        done = self.store.done_rows(label)
        if done is not None:
            done = done.between(first, last)
        known = None if users is None else self.store.delivered(users)
        return PieceState(done if done else None, known)

    def record(self, part: str, settled: Settled, blank_rows: int, complete: bool) -> None:
        """A partition's settled rows; ``complete``: every row of it is settled (the run
        was not stopped), so a resumed run need not read it again."""
        self.record_rows(settled)
        if complete:
            self.store.record_part(part, blank_rows)
        self.store.checkpoint(force=True)

    def record_rows(self, settled: Settled) -> None:
        store = self.store
        for source, row, user, fingerprint, raw in settled.sent:
            store.record_sent(source, row, user, fingerprint, raw)
        for source, row, stage, error, cells, keys in settled.failed:
            store.record_failed(source, row, stage, error, list(cells), keys)
        for source, row, reason in settled.skipped:
            store.record_skipped(source, row, reason)

    def restore(self, summary: Summary, failures: FailureWriter) -> list[str]:
        """Count what the resumed run had done before; its failed rows go to this run's
        failure CSV again. Notes for the person running it."""
        restored = self.restored
        if restored is None:
            return []
        Tally(summary, failures).restore(restored, self.prior_failures)
        summary.blank_rows += sum(self.parts.values())
        notes = [f"resumed: {restored.total:,} rows were already done before"]
        if self.parts:
            notes[0] += f"; finished partitions not read again: {len(self.parts):,}"
        return notes

    def close(self) -> None:
        self.store.close()
