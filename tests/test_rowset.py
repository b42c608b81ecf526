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
