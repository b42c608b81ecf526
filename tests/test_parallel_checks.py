"""Which raw checks the worker processes may run: only those with a look-up of their own
(a parent's state connection must never be used across a fork)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from importer.core.config import load_mapping
from importer.core.messages import RowMapper
from importer.engine.parallel import MapPool, RawCheck, Unchanged

MAPPING = "user_id: customer_id\nfields:\n  firstName: first_name\n"


def nothing_same(pairs: Sequence[tuple[str, bytes]]) -> set[str]:
    return set()


def own_lookup() -> Unchanged:
    return nothing_same


def test_only_checks_with_their_own_look_up_go_to_the_workers(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(MAPPING, encoding="utf-8")
    mapper = RowMapper(load_mapping(tmp_path / "m.yaml"), ["customer_id", "first_name"], 0)
    fingerprints_only = RawCheck(mapper, None, "v")
    shared_connection = RawCheck(mapper, nothing_same, "v")
    own_connection = RawCheck(mapper, nothing_same, "v", own_lookup)
    assert fingerprints_only.worker_safe and own_connection.worker_safe
    assert not shared_connection.worker_safe
    for checks, expected in [
        ({"": fingerprints_only}, True),
        ({"": own_connection}, True),
        ({"": shared_connection}, False),
        ({}, False),
    ]:
        pool = MapPool({"": mapper}, 1, True, checks)
        try:
            assert pool.checks_raw is expected
        finally:
            pool.close()
    inline = MapPool({"": mapper}, 0, True, {"": own_connection})
    assert not inline.checks_raw
