import pytest
from hypothesis import given
from hypothesis import strategies as st

from importer.core.rowset import RowSet


@given(
    st.sets(st.integers(min_value=0, max_value=100_000)),
    st.integers(min_value=0, max_value=100_000),
)
def test_rowset_behaves_like_a_set(rows: set[int], probe: int) -> None:
    found = RowSet()
    for row in sorted(rows, reverse=True):
        found.add(row)
        found.add(row)
    assert len(found) == len(rows)
    assert all(row in found for row in rows)
    assert (probe in found) == (probe in rows)
    assert -1 not in found and "1" not in found


@given(st.sets(st.integers(min_value=0, max_value=20_000)))
def test_rowset_survives_bytes(rows: set[int]) -> None:
    found = RowSet()
    for row in rows:
        found.add(row)
    again = RowSet.from_bytes(found.to_bytes())
    assert len(again) == len(rows)
    assert {row for row in range(20_002) if row in again} == rows
    again.add(20_001)
    assert 20_001 in again and len(again) == len(rows) + (20_001 not in rows)


@given(
    st.sets(st.integers(min_value=0, max_value=300)),
    st.integers(min_value=0, max_value=320),
    st.none() | st.integers(min_value=0, max_value=320),
    st.integers(min_value=0, max_value=320),
    st.none() | st.integers(min_value=0, max_value=320),
)
def test_a_span_of_a_rowset_holds_exactly_its_rows(
    rows: set[int], first: int, last: int | None, inner_first: int, inner_last: int | None
) -> None:
    found = RowSet()
    for row in rows:
        found.add(row)

    def within(a: int, b: int | None) -> set[int]:
        return {row for row in range(-8, 340) if row >= a and (b is None or row <= b)}

    part = found.between(first, last)
    wanted = rows & within(first, last)
    assert {row for row in range(-8, 340) if row in part} == wanted
    assert len(part) == len(wanted)
    inner = part.between(inner_first, inner_last)  # a span of a span
    wanted &= within(inner_first, inner_last)
    assert {row for row in range(-8, 340) if row in inner} == wanted
    assert len(inner) == len(wanted)


def test_a_span_of_a_rowset_refuses_rows_before_it() -> None:
    found = RowSet()
    found.add(20)
    with pytest.raises(ValueError):
        found.between(16, None).add(3)
