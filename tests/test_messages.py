"""The row → message builder and message ids."""

from __future__ import annotations

import hashlib
import json
import pickle
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from importer.core.config import parse_mapping
from importer.core.messages import (
    MESSAGE_ID_NAMESPACE,
    MappedRow,
    RowMapper,
    RowProblem,
    content_fingerprint,
    encode_body,
    message_id,
)
from importer.errors import MappingError

RUN_TIME = 1_700_000_000_000
HEADER = ["id", "first", "mail", "mobile", "sex", "dob", "tier", "spent", "vip", "prefs", "seen"]
MAPPING = """
user_id: {column: id, transform: [strip, upper]}
time: {column: seen, format: "%Y-%m-%d %H:%M:%S"}
fields:
  firstName: first
  email: mail
  phoneNumber: {column: mobile, phone_format: national, region: IR}
  gender: sex
  birthday: {column: dob, format: "%d/%m/%Y"}
  country: {value: Iran}
hashed:
  hashedEmail: {from: email}
custom:
  tier: tier
  spent: {column: spent, type: float}
  vip: {column: vip, type: bool, default: "no"}
  prefs: {column: prefs, type: json}
"""
GOOD = ["c1", "Ali", " Ali@Example.com ", "+98 912 112 2333", "m", "01/05/1990", "gold", "12.5",
        "", '{"lang": "fa"}', "2024-11-20 11:24:03"]  # fmt: skip


def mapper(text: str = MAPPING, header: list[str] = HEADER) -> RowMapper:
    return RowMapper(parse_mapping(text), header, RUN_TIME)


def test_a_good_row_becomes_the_documented_message() -> None:
    row = mapper().map_row(GOOD)
    assert isinstance(row, MappedRow)
    assert row.user_id == "C1"
    assert row.message == {
        "type": "user",
        "time": 1732101843000,
        "firstName": "Ali",
        "email": "ali@example.com",
        "phoneNumber": "09121122333",
        "gender": "Male",
        "birthday": 641520000000,
        "country": "Iran",
        "hashedEmail": hashlib.sha256(b"ali@example.com").hexdigest(),
        "customAttributes": {"tier": "gold", "spent": 12.5, "vip": False, "prefs": {"lang": "fa"}},
    }


def test_every_problem_of_a_row_is_reported() -> None:
    bad = list(GOOD)
    bad[0], bad[2], bad[5], bad[7] = "", "not-an-email", "31/02/1990", "lots"
    result = mapper().map_row(bad)
    assert isinstance(result, list)
    assert [p.key for p in result] == [
        "id: is empty",
        "mail: not an email address",
        "dob: not a real date",
        "spent: not a number",
    ]
    assert str(result[1]) == (
        'mail: not an email address ("not-an-email"). Use an address like name@example.com.'
    )


def test_empty_cells_are_omitted_or_null() -> None:
    blank = ["c1"] + [""] * (len(HEADER) - 1)
    row = mapper().map_row(blank)
    assert isinstance(row, MappedRow)
    assert row.message == {
        "type": "user",
        "time": RUN_TIME,
        "country": "Iran",
        "customAttributes": {"vip": False},
    }
    as_null = mapper(MAPPING + "empty: null\n").map_row(blank)
    assert isinstance(as_null, MappedRow)
    assert as_null.message["firstName"] is None
    assert as_null.message["customAttributes"]["tier"] is None
    assert as_null.message["time"] == RUN_TIME


def test_required_empty_cell_fails_the_row() -> None:
    text = MAPPING.replace("firstName: first", "firstName: {column: first, required: true}")
    result = mapper(text).map_row(["c1"] + [""] * (len(HEADER) - 1))
    assert isinstance(result, list)
    assert [p.key for p in result] == ["first: is empty"]


def test_send_clear_false_sends_only_hashes() -> None:
    row = mapper(MAPPING + "privacy: {send_clear: false}\n").map_row(GOOD)
    assert isinstance(row, MappedRow)
    assert "email" not in row.message and "phoneNumber" not in row.message
    assert row.message["hashedPhoneNumber"] == hashlib.sha256(b"+989121122333").hexdigest()


def test_unmapped_custom_sends_other_columns_as_strings() -> None:
    text = "user_id: id\nfields: {firstName: first}\nunmapped: custom\n"
    row = mapper(text, ["id", "first", "note", "_error"]).map_row(["1", "Ali", "007", "x"])
    assert isinstance(row, MappedRow)
    assert row.message["customAttributes"] == {"note": "007"}


def test_missing_columns_are_reported_together_with_the_closest_header() -> None:
    text = "user_id: customer_no\nfields: {email: mail_address, firstName: first}\n"
    with pytest.raises(MappingError) as caught:
        mapper(text, ["customer_id", "email_address", "first"])
    found = [str(p) for p in caught.value.problems]
    assert found[0].startswith(
        "user_id.column: the file has no column 'customer_no'; the closest header is 'customer_id'"
    )
    assert found[1].startswith(
        "fields.email.column: the file has no column 'mail_address'; "
        "the closest header is 'email_address'"
    )
    assert len(found) == 2


def test_duplicate_headers_need_the_numbered_name() -> None:
    header = ["id", "phone", "phone#2"]
    with pytest.raises(MappingError, match=r"2 columns named 'phone' \(columns 2, 3\)"):
        mapper("user_id: id\nfields: {phoneNumber: phone}", header)
    both = "user_id: id\nfields: {phoneNumber: 'phone#2'}\ncustom: {other: phone}"
    row = mapper(both, header).map_row(["1", "a", "09121122333"])
    assert isinstance(row, MappedRow)
    assert row.message["phoneNumber"] == "09121122333"
    assert row.message["customAttributes"] == {"other": "a"}


def test_bad_constant_is_a_mapping_error() -> None:
    with pytest.raises(MappingError, match=r"fields.gender.value: unknown gender: 'robot'"):
        mapper("user_id: id\nfields: {gender: {value: robot}}")


def test_message_id_equals_uuid5() -> None:
    namespace = uuid.UUID(bytes=MESSAGE_ID_NAMESPACE)
    assert message_id("u1", 5, '{"a":1}') == str(uuid.uuid5(namespace, 'u1\x1f5\x1f{"a":1}'))


def test_body_is_the_documented_envelope() -> None:
    row = mapper().map_row(GOOD)
    assert isinstance(row, MappedRow)
    body, mid = encode_body(row)
    data = json.loads(body)
    assert data["customUserId"] == "C1"
    assert len(data["messages"]) == 1
    assert data["messages"][0]["id"] == mid
    assert {k: v for k, v in data["messages"][0].items() if k != "id"} == row.message


def test_fingerprint_ignores_time_but_not_content() -> None:
    a = MappedRow("u", 1, {"email": "a@b.co"})
    b = MappedRow("u", 2, {"email": "a@b.co"})
    c = MappedRow("u", 1, {"email": "c@b.co"})
    assert content_fingerprint(a) == content_fingerprint(b) != content_fingerprint(c)


def test_row_problem_text_for_non_programmers() -> None:
    problem = RowProblem("fields.birthday", "dob", "31/02/1990", "not a real date", "Check it.")
    assert str(problem) == 'dob: not a real date ("31/02/1990"). Check it.'


# --- properties ------------------------------------------------------------------------

cells = st.lists(st.text(max_size=20), min_size=len(HEADER), max_size=len(HEADER))


@given(cells)
def test_any_row_maps_or_fails_with_problems_never_raises(row: list[str]) -> None:
    result = mapper().map_row(row)
    assert isinstance(result, MappedRow) or (
        result and all(isinstance(p, RowProblem) for p in result)
    )


@given(st.lists(st.text(max_size=12), min_size=len(HEADER), max_size=len(HEADER)))
def test_same_row_same_id_and_valid_json_with_integer_times(row: list[str]) -> None:
    row[0] = row[0] or "x"
    row[5] = "01/05/1990"
    row[10] = "2024-11-20 11:24:03"
    first, second = mapper().map_row(row), mapper().map_row(list(row))
    if not isinstance(first, MappedRow):
        return
    assert isinstance(second, MappedRow)
    body, mid = encode_body(first)
    assert encode_body(second) == (body, mid)
    message: dict[str, Any] = json.loads(body)["messages"][0]
    assert type(message["time"]) is int
    assert type(message["birthday"]) is int


@given(st.text(min_size=1), st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=4))
def test_different_content_different_id(user: str, attributes: dict[str, str]) -> None:
    base = MappedRow(user, 1, {"customAttributes": attributes})
    changed = MappedRow(user, 2, {"customAttributes": attributes})
    assert encode_body(base)[1] != encode_body(changed)[1]


def test_headers_match_across_persian_letter_variants_case_and_spacing() -> None:
    header = ["کد مشتري", "First_Name"]
    row = mapper("user_id: کد مشتری\nfields: {firstName: first name}", header).map_row(["7", "Ali"])
    assert isinstance(row, MappedRow)
    assert (row.user_id, row.message["firstName"]) == ("7", "Ali")


def test_body_without_fields_is_still_valid_json() -> None:
    body, mid = encode_body(MappedRow("u", 7, {}))
    assert json.loads(body) == {
        "customUserId": "u",
        "messages": [{"type": "user", "id": mid, "time": 7}],
    }


@given(
    st.sampled_from(["national", "e164"]),
    st.from_regex(r"(\+98 ?|0098|98|0)?91[0-9][ -]?[0-9]{3}[ -]?[0-9]{4}", fullmatch=True),
)
def test_hashed_phone_is_the_hash_of_the_e164_form(phone_format: str, cell: str) -> None:
    from importer.core.phone import canonical_phone_for_hash

    text = (
        f"user_id: id\nfields: {{phoneNumber: {{column: p, phone_format: {phone_format}, "
        "region: IR}}\nhashed: {hashedPhoneNumber: {from: phoneNumber}}\n"
    )
    row = mapper(text, ["id", "p"]).map_row(["1", cell])
    assert isinstance(row, MappedRow)
    expected = hashlib.sha256(canonical_phone_for_hash(cell, "IR").encode()).hexdigest()
    assert row.fields["hashedPhoneNumber"] == expected


@given(cells)
def test_check_row_finds_exactly_the_problems_map_row_finds(row: list[str]) -> None:
    compiled = mapper()
    full, checked = compiled.map_row(row), compiled.check_row(row)
    if isinstance(full, MappedRow):
        assert isinstance(checked, MappedRow)
    else:
        assert checked == full


def test_a_row_survives_pickling_whether_mapped_here_or_carried_as_content() -> None:
    mapped = mapper().map_row(GOOD)
    assert isinstance(mapped, MappedRow)
    carried = MappedRow.from_content(mapped.user_id, mapped.time, mapped.content,
                                     mapped.notes, mapped.body)  # fmt: skip
    for row in (mapped, carried):
        back = pickle.loads(pickle.dumps(row))
        assert back.message == mapped.message  # the carried row's fields come from its JSON
        assert (back.content, back.body, back.notes) == (mapped.content, mapped.body, mapped.notes)
