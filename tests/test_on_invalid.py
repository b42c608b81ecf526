"""on_invalid: drop_field, phone extensions and ambiguity notes in the message builder."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from importer.core.config import parse_mapping
from importer.core.messages import MappedRow, RowMapper, RowProblem
from importer.edges.report import warnings_path
from importer.errors import MappingError
from tests.cli_helpers import assert_no_traceback, cli

HEADER = ["id", "phone", "email", "orders"]


def mapper(text: str) -> RowMapper:
    return RowMapper(parse_mapping(text), HEADER, 1_700_000_000_000)


WIDE = """
user_id: id
on_invalid: drop_field
fields:
  phoneNumber: {column: phone, phone_format: e164, region: [IR, US]}
  email: email
custom:
  orders: {column: orders, type: int}
"""

# (mapping, cells, expected fields or None when the row fails, expected notes)
CASES = [
    # mapping-wide drop_field: each bad value is left out, the row stays
    (WIDE, ["1", "not a phone", "a@b.co", "3"],
     {"email": "a@b.co", "customAttributes": {"orders": 3}},
     ['phone: not a phone number ("not a phone"); left out (on_invalid: drop_field)']),
    (WIDE, ["1", "09121122333", "nope", "x"],
     {"phoneNumber": "+989121122333"},
     ['email: not an email address ("nope"); left out (on_invalid: drop_field)',
      'orders: not a whole number ("x"); left out (on_invalid: drop_field)']),
    (WIDE, ["1", "09121122333", "a@b.co", "3"],
     {"phoneNumber": "+989121122333", "email": "a@b.co", "customAttributes": {"orders": 3}},
     []),
    # the default is fail_row
    (WIDE.replace("on_invalid: drop_field\n", ""), ["1", "not a phone", "a@b.co", "3"], None, []),
    # per field: only that field is dropped
    (WIDE.replace("on_invalid: drop_field\n", "").replace(
        "email: email", "email: {column: email, on_invalid: drop_field}"),
     ["1", "09121122333", "nope", "3"],
     {"phoneNumber": "+989121122333", "customAttributes": {"orders": 3}},
     ['email: not an email address ("nope"); left out (on_invalid: drop_field)']),
    # a field's own fail_row wins over the mapping's drop_field
    (WIDE.replace("email: email", "email: {column: email, on_invalid: fail_row}"),
     ["1", "09121122333", "nope", "3"], None, []),
    # a required field is never dropped, whatever the mapping says
    (WIDE.replace("email: email", "email: {column: email, required: true}"),
     ["1", "09121122333", "nope", "3"], None, []),
    # extension kept in an attribute when the mapping asks
    (WIDE.replace("region: [IR, US]}", "region: [IR, US], extension: phone_ext}"),
     ["1", "(702) 555-0101 x6413", "", "3"],
     {"phoneNumber": "+17025550101", "customAttributes": {"orders": 3, "phone_ext": "6413"}},
     []),
    # ... else dropped with a note
    (WIDE, ["1", "(702) 555-0101 ext. 12", "", ""],
     {"phoneNumber": "+17025550101"},
     ['phone: extension 12 of "(702) 555-0101 ext. 12" left out']),
    # a number valid in two listed regions: the first, noted
    (WIDE, ["1", "(212) 555-0143", "", ""],
     {"phoneNumber": "+982125550143"},
     ['phone: "(212) 555-0143" is valid in IR and US; read as IR (+982125550143)']),
]  # fmt: skip


@pytest.mark.parametrize(("text", "cells", "fields", "notes"), CASES)
def test_table(
    text: str, cells: list[str], fields: dict[str, object] | None, notes: list[str]
) -> None:
    compiled = mapper(text)
    row = compiled.map_row(cells)
    checked = compiled.check_row(cells)
    if fields is None:
        assert isinstance(row, list) and isinstance(checked, list)
        assert row == checked
        return
    assert isinstance(row, MappedRow) and isinstance(checked, MappedRow)
    assert row.fields == fields
    assert list(row.notes) == notes == list(checked.notes)


def test_notes_are_counted_as_warnings_once_per_valid_row() -> None:
    compiled = mapper(WIDE)
    compiled.map_row(["1", "bad", "", ""])
    compiled.map_row(["2", "bad", "", ""])
    compiled.map_row(["", "bad", "", ""])  # fails (no id): its notes are not counted
    compiled.map_row(["3", "(212) 555-0143", "", ""])
    assert compiled.warnings == {
        "phone: not a phone number; left out of fields.phoneNumber (on_invalid: drop_field)": 2,
        "phone: numbers valid in IR and US, read as IR": 1,
    }


def test_notes_do_not_leak_into_the_next_row() -> None:
    compiled = mapper(WIDE)
    compiled.map_row(["1", "bad", "", ""])
    row = compiled.map_row(["2", "09121122333", "", ""])
    assert isinstance(row, MappedRow) and row.notes == ()


def test_dropped_values_keep_the_message_content_of_a_row_without_them() -> None:
    # The message id depends on the content: a row sent without its bad value is
    # exactly the row whose cell was empty.
    compiled = mapper(WIDE)
    dropped = compiled.map_row(["1", "bad", "a@b.co", "3"])
    empty = compiled.map_row(["1", "", "a@b.co", "3"])
    assert isinstance(dropped, MappedRow) and isinstance(empty, MappedRow)
    assert dropped.content == empty.content


ID = "user_id: id\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f"{ID}on_invalid: skip\n",
         "on_invalid: found 'skip'; expected one of: fail_row, drop_field"),
        ("user_id: {column: id, on_invalid: drop_field}\n",
         "user_id.on_invalid: not a setting of id"),
        (f"{ID}time: {{column: orders, on_invalid: drop_field}}\n",
         "time.on_invalid: not a setting of time"),
        (f"{ID}fields: {{email: {{column: email, required: true, on_invalid: drop_field}}}}\n",
         "fields.email.on_invalid: a required field cannot be dropped"),
        (f"{ID}fields: {{phoneNumber: {{column: phone, region: [IR, XX]}}}}\n",
         "fields.phoneNumber.region[1]: unknown region 'XX'"),
        (f"{ID}fields: {{phoneNumber: {{column: phone, region: UK}}}}\n",
         "fields.phoneNumber.region: unknown region 'UK' (did you mean 'GB'?)"),
        (f"{ID}fields: {{phoneNumber: {{column: phone, region: [IR, IR]}}}}\n",
         "fields.phoneNumber.region[1]: IR is listed twice"),
        (f"{ID}fields: {{phoneNumber: {{column: phone, extension: orders}}}}\n"
         "custom: {orders: orders}\n",
         "fields.phoneNumber.extension: custom attribute 'orders' is already filled by "
         "custom.orders"),
        (f"{ID}fields: {{phoneNumber: {{column: phone, extension: 12}}}}\n",
         "fields.phoneNumber.extension: expected the name of a custom attribute"),
        (f"{ID}fields: {{email: {{column: email, extension: x}}}}\n",
         "fields.email.extension: not a setting of email"),
    ],
)  # fmt: skip
def test_mapping_errors(text: str, message: str) -> None:
    with pytest.raises(MappingError) as info:
        parse_mapping(text)
    assert message in str(info.value)


_CELL = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["09121122333", "(212) 555-0143", "(702) 555-0101 x5", "a@b.co", "12", "+44 7911 123456"]
    ),
)


@given(st.lists(_CELL, min_size=4, max_size=4).map(lambda cells: ["u", *cells[1:]]))
def test_drop_field_never_fails_an_optional_value(cells: list[str]) -> None:
    """With drop_field, a row with an id is always sent; every value it carries is the
    value fail_row would have produced, and each missing one is explained."""
    dropping = mapper(WIDE).map_row(cells)
    failing = mapper(WIDE.replace("on_invalid: drop_field\n", "")).map_row(cells)
    assert isinstance(dropping, MappedRow)
    if isinstance(failing, MappedRow):
        assert dropping.fields == failing.fields
        assert not any("drop_field" in note for note in dropping.notes)
        return
    assert all(isinstance(p, RowProblem) for p in failing)
    left_out = [n for n in dropping.notes if "on_invalid: drop_field" in n]
    assert len(left_out) == len(failing)
    for problem in failing:
        assert any(n.startswith(f"{problem.column}: {problem.reason}") for n in left_out)


@pytest.mark.parametrize(
    ("failures", "warnings"),
    [
        ("customers.csv.failures.csv", "customers.csv.warnings.csv"),
        ("failures-2026-11-30.csv", "failures-2026-11-30.warnings.csv"),
        ("out/failures", "out/failures.warnings.csv"),
    ],
)
def test_the_warnings_file_sits_beside_the_failure_file(failures: str, warnings: str) -> None:
    assert warnings_path(Path(failures)) == Path(warnings)


@pytest.mark.e2e
def test_validate_lists_rows_kept_without_a_value(tmp_path: Path) -> None:
    data = tmp_path / "crm.csv"
    data.write_text("id,phone,email\n1,0912 112 2333,a@b.co\n2,oops,c@d.org\n3,,x\n")
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "user_id: id\non_invalid: drop_field\n"
        "fields: {phoneNumber: {column: phone, region: IR, phone_format: e164}, email: email}\n"
    )
    result = cli("validate", data, "-m", mapping, cwd=tmp_path)
    assert_no_traceback(result)
    assert result.returncode == 0, result.stderr  # every row is valid
    assert "Rows kept despite a warning, and why: crm.csv.warnings.csv" in result.stdout
    with open(tmp_path / "crm.csv.warnings.csv", encoding="utf-8-sig", newline="") as handle:
        listed = list(csv.DictReader(handle))
    assert [(r["_row"], r["_stage"], r["_error"]) for r in listed] == [
        ("2", "warning", 'phone: not a phone number ("oops"); left out (on_invalid: drop_field)'),
        ("3", "warning", 'email: not an email address ("x"); left out (on_invalid: drop_field)'),
    ]
    assert not (tmp_path / "crm.csv.failures.csv").exists()
