"""Drafting a mapping from a header and sampled rows (init-mapping)."""

from __future__ import annotations

import random
import sys
from collections.abc import Callable

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from importer.core.config import STANDARD_FIELDS, Mapping, parse_mapping
from importer.core.infer import Draft, draft_mapping
from importer.core.messages import MappedRow, RowMapper
from importer.edges.readers import make_header


def compiled(draft: Draft, header: list[str]) -> tuple[Mapping, RowMapper]:
    """What `validate` does with the draft, unchanged."""
    mapping = parse_mapping(draft.yaml)
    return mapping, RowMapper(mapping, header, 0)


def assert_rows_map(draft: Draft, header: list[str], rows: list[list[str]]) -> None:
    _mapping, mapper = compiled(draft, header)
    for row in rows:
        result = mapper.map_row(row)
        assert isinstance(result, MappedRow), (row, result)


def check_lines(draft: Draft) -> list[str]:
    return [line for line in draft.yaml.splitlines() if "CHECK:" in line]


# --- an English CRM export --------------------------------------------------------

CRM_HEADER = [
    "customer_id", "First Name", "Last Name", "E-mail", "Mobile", "Gender", "DOB", "City",
    "Points", "Balance", "Active", "Prefs", "Joined", "Last Seen",
]  # fmt: skip
CRM_ROWS = [
    ["1001", "Ali", "Rezaei", "ali@example.com", "09121122333", "male", "25/12/1990",
     "Tehran", "120", "12.5", "yes", '{"news": true}', "2023-01-05", "2024-01-02T03:04:05"],
    ["1002", "Sara", "Ahmadi", "Sara@Example.com", "+98 912 334 5566", "female", "03/04/1985",
     "Shiraz", "0", "0", "no", '["sms"]', "2023-02-11", "2024-02-02T10:00:00"],
    ["1003", "John", "Smith", "", "9123334444", "M", "14/07/2001", "Tabriz", "7", "100.25",
     "Yes", "{}", "2022-12-31", "2024-03-02T23:59:59"],
    ["1004", "Mina", "", "mina@example.org", "989124445566", "F", "", "Tehran", "35", "-3",
     "no", "", "2021-06-30", ""],
]  # fmt: skip


def test_english_crm_export() -> None:
    draft = draft_mapping(CRM_HEADER, CRM_ROWS, source_name="crm.csv")
    assert draft.user_id == "customer_id"
    assert draft.fields == {
        "firstName": "First Name",
        "lastName": "Last Name",
        "email": "E-mail",
        "phoneNumber": "Mobile",
        "gender": "Gender",
        "birthday": "DOB",
        "city": "City",
    }
    assert draft.custom == {
        "points": ("Points", "int", None),
        "balance": ("Balance", "float", None),
        "active": ("Active", "bool", None),
        "prefs": ("Prefs", "json", None),
        "joined": ("Joined", "date", None),
        "last_seen": ("Last Seen", "datetime", None),
    }
    assert draft.hashed == {}
    assert draft.notes == []
    assert check_lines(draft) == []
    mapping, _ = compiled(draft, CRM_HEADER)
    phone = mapping.fields["phoneNumber"]
    assert (phone.phone_format, phone.region) == ("national", ("IR",))
    assert mapping.fields["birthday"].formats == ("%d/%m/%Y",)
    assert mapping.unmapped == "ignore"
    assert mapping.source.header_row == 1
    assert_rows_map(draft, CRM_HEADER, CRM_ROWS)


def test_the_file_starts_with_where_it_came_from() -> None:
    draft = draft_mapping(CRM_HEADER, CRM_ROWS, source_name="crm.xlsx", sheet="Customers")
    head = draft.yaml.split("user_id:", 1)[0]
    assert '"crm.xlsx"' in head
    assert '"Customers"' in head
    assert "4 sampled rows" in head
    assert "review every line marked CHECK before importing" in head
    assert all(line.startswith("#") for line in head.splitlines())
    assert parse_mapping(draft.yaml).source.sheet == "Customers"


def test_every_match_says_why() -> None:
    draft = draft_mapping(CRM_HEADER, CRM_ROWS)
    line = next(x for x in draft.yaml.splitlines() if x.strip().startswith("phoneNumber:"))
    assert 'header "Mobile" is a synonym of phoneNumber' in line
    assert "100% of sampled cells are phone numbers" in line
    user_id = next(x for x in draft.yaml.splitlines() if x.startswith("user_id:"))
    assert "id name" in user_id and "unique" in user_id


# --- a Persian export -------------------------------------------------------------

FA_HEADER = [
    "کد مشتری", "نام", "نام خانوادگی", "موبايل", "تاریخ تولد", "جنسیت", "شهر", "استان",
    "امتیاز", "تاریخ عضویت",
]  # fmt: skip
FA_ROWS = [
    ["۱۰۰۱", "علی", "رضایی", "۰۹۱۲۱۱۲۲۳۳۳", "1370/05/12", "مرد", "تهران", "تهران", "۱۲۰",
     "۱۴۰۰/۰۱/۰۵"],
    ["۱۰۰۲", "سارا", "احمدی", "۰۹۱۲ ۳۳۴ ۵۵۶۶", "۱۳۶۵/۱۱/۳۰", "زن", "شیراز", "فارس", "۷",
     "1401/12/29"],
    ["۱۰۰۳", "رضا", "کریمی", "+۹۸۹۱۲۴۴۴۵۵۶۶", "1380/01/01", "مرد", "كرج", "البرز", "0",
     "1399/07/15"],
]  # fmt: skip


def test_persian_export() -> None:
    draft = draft_mapping(FA_HEADER, FA_ROWS, source_name="مشتریان.xlsx")
    assert draft.user_id == "کد مشتری"
    assert draft.fields == {
        "firstName": "نام",
        "lastName": "نام خانوادگی",
        "phoneNumber": "موبايل",  # Arabic yeh, as legacy exports write it
        "gender": "جنسیت",
        "birthday": "تاریخ تولد",
        "city": "شهر",
        "region": "استان",
    }
    assert draft.custom == {
        "amtiaz": ("امتیاز", "int", None),
        "tarikh_azvit": ("تاریخ عضویت", "date", "jalali:%Y/%m/%d"),
    }
    mapping, _ = compiled(draft, FA_HEADER)
    assert mapping.fields["birthday"].formats == ("jalali:%Y/%m/%d",)
    assert mapping.fields["phoneNumber"].region == ("IR",)
    assert draft.notes == []
    assert_rows_map(draft, FA_HEADER, FA_ROWS)


def test_jalali_with_dashes_and_time() -> None:
    header = ["id", "تاریخ ثبت"]
    rows = [["1", "1402-01-05 10:20:30"], ["2", "۱۴۰۲-۱۲-۲۹ ۰۸:۰۰:۰۰"]]
    draft = draft_mapping(header, rows)
    assert draft.custom["tarikh_sbt"] == ("تاریخ ثبت", "datetime", "jalali:%Y-%m-%d %H:%M:%S")
    assert_rows_map(draft, header, rows)


def test_jalali_years_are_never_read_as_gregorian() -> None:
    # ISO-shaped, but 1399 is a Solar Hijri year: reading it as ISO would be 1399 AD.
    header = ["id", "joined"]
    rows = [["1", "1399-01-05"], ["2", "1400-12-29"]]
    draft = draft_mapping(header, rows)
    assert draft.custom["joined"] == ("joined", "date", "jalali:%Y-%m-%d")


# --- dates ------------------------------------------------------------------------


def test_ambiguous_day_month_is_day_first_and_checked() -> None:
    header = ["id", "visit"]
    rows = [["1", "03/04/2021"], ["2", "03/04/2021"], ["3", "11/12/2020"]]
    draft = draft_mapping(header, rows)
    assert draft.custom["visit"] == ("visit", "date", "%d/%m/%Y")
    (line,) = check_lines(draft)
    assert line.strip().startswith("visit:")
    assert '"%m/%d/%Y"' in line
    assert any(n.startswith("custom.visit:") and "day first" in n for n in draft.notes)
    assert "1 line is marked CHECK" in draft.yaml
    assert_rows_map(draft, header, rows)


def test_month_first_when_a_second_number_is_above_12() -> None:
    header = ["id", "visit"]
    rows = [["1", "03/04/2021"], ["2", "12/25/2020"]]
    draft = draft_mapping(header, rows)
    assert draft.custom["visit"] == ("visit", "date", "%m/%d/%Y")
    assert check_lines(draft) == []
    assert_rows_map(draft, header, rows)


def test_day_first_when_a_first_number_is_above_12() -> None:
    header = ["id", "visit"]
    rows = [["1", "03.04.2021 10:15"], ["2", "25.12.2020 23:00"]]
    draft = draft_mapping(header, rows)
    assert draft.custom["visit"] == ("visit", "datetime", "%d.%m.%Y %H:%M")
    assert_rows_map(draft, header, rows)


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        (["2024-01-02", "2023-12-31"], ("date", None)),
        (["2024-01-02T03:04:05", "2024-01-02"], ("datetime", None)),
        (["2024/01/02", "2023/12/31"], ("date", "%Y/%m/%d")),
        (["31-12-2023", "01-02-2024"], ("date", "%d-%m-%Y")),
        (["12-31-2023", "01-02-2024"], ("date", "%m-%d-%Y")),
        (["31/12/2023 10:00:05", "2024-01-02"], ("datetime", "%d/%m/%Y %H:%M:%S")),
    ],
)
def test_date_formats(cells: list[str], expected: tuple[str, str | None]) -> None:
    header = ["id", "seen"]
    rows = [[str(i), cell] for i, cell in enumerate(cells)]
    draft = draft_mapping(header, rows)
    assert draft.custom["seen"][1:] == expected
    assert_rows_map(draft, header, rows)


def test_compact_dates_only_when_the_header_says_date() -> None:
    rows = [["1", "20240102"], ["2", "19991231"]]
    assert draft_mapping(["id", "signup_date"], rows).custom["signup_date"][1:] == (
        "date",
        "%Y%m%d",
    )
    assert draft_mapping(["id", "code"], rows).custom["code"][1:] == ("int", None)


def test_birthday_gets_its_format_and_a_check_when_ambiguous() -> None:
    header = ["id", "Date of Birth"]
    rows = [["1", "01/02/1990"], ["2", "05/06/1985"]]
    draft = draft_mapping(header, rows)
    assert draft.fields == {"birthday": "Date of Birth"}
    mapping, _ = compiled(draft, header)
    assert mapping.fields["birthday"].formats == ("%d/%m/%Y",)
    assert any(n.startswith("fields.birthday:") for n in draft.notes)


# --- custom types -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cells", "kind"),
    [
        (["1", "0", "1"], "bool"),
        (["0", "1", "2"], "int"),
        (["yes", "No", "Y"], "bool"),
        (["بله", "خیر"], "bool"),
        (["۱۲", "-3", "7.0"], "int"),
        (["1.5", "2", "1e3"], "float"),
        (["0012", "0044"], "string"),  # an int would lose the leading zeros
        (['{"a": 1}', "[1, 2]"], "json"),
        (['{"a": 1}', "3"], "string"),
        (["hello", "12"], "string"),
        (["", " "], "string"),
    ],
)
def test_custom_types(cells: list[str], kind: str) -> None:
    header = ["id", "value"]
    rows = [[str(i), cell] for i, cell in enumerate(cells)]
    draft = draft_mapping(header, rows)
    assert draft.custom["value"] == ("value", kind, None)
    assert_rows_map(draft, header, rows)


def test_nearly_numeric_column_stays_text_and_says_why() -> None:
    header = ["id", "score"]
    rows = [[str(i), str(i * 3)] for i in range(30)] + [["x", "N/A"]]
    draft = draft_mapping(header, rows)
    assert draft.custom["score"] == ("score", "string", None)
    line = next(x for x in draft.yaml.splitlines() if x.strip().startswith("score:"))
    assert '"N/A"' in line


# --- phones and hashes ------------------------------------------------------------


def test_phone_found_by_its_cells_and_other_phones_stay_text() -> None:
    header = ["id", "contact", "Mobile"]
    rows = [
        ["1", "09121112233", "09351112233"],
        ["2", "+989121112234", "09351112234"],
        ["3", "9121112235", "09351112235"],
    ]
    draft = draft_mapping(header, rows)
    assert draft.fields == {"phoneNumber": "Mobile"}
    assert draft.custom == {"contact": ("contact", "string", None)}
    assert_rows_map(draft, header, rows)


def test_phone_by_cells_alone() -> None:
    header = ["id", "contact"]
    rows = [["1", "09121112233"], ["2", "9121112234"]]
    draft = draft_mapping(header, rows)
    assert draft.fields == {"phoneNumber": "contact"}
    assert any(n.startswith("fields.phoneNumber:") for n in draft.notes)  # a CHECK


def test_international_numbers_are_e164() -> None:
    header = ["id", "phone"]
    rows = [["1", "+44 7400 123456"], ["2", "+44 7400 654321"], ["3", "+1 201 555 0123"]]
    draft = draft_mapping(header, rows)
    mapping, _ = compiled(draft, header)
    spec = mapping.fields["phoneNumber"]
    assert (spec.phone_format, spec.region) == ("e164", ("GB",))
    assert_rows_map(draft, header, rows)


def test_a_phone_header_whose_cells_are_not_phones_is_commented_out() -> None:
    header = ["id", "Phone"]
    rows = [["1", "call after 5"], ["2", "n/a"], ["3", "ask Sara"]]
    draft = draft_mapping(header, rows)
    assert draft.fields == {}
    assert draft.custom == {"phone": ("Phone", "string", None)}
    (line,) = check_lines(draft)
    assert line.strip().startswith("# phoneNumber:")
    assert_rows_map(draft, header, rows)


def test_two_columns_competing_for_one_field_are_both_left_for_the_user() -> None:
    header = ["id", "City", "Town"]
    rows = [["1", "Tehran", "Karaj"], ["2", "Shiraz", "Rey"]]
    draft = draft_mapping(header, rows)
    assert "city" not in draft.fields
    assert set(draft.custom) == {"city", "town"}
    text = draft.yaml
    assert '# city: {column: "City"}' in text
    assert '# city: {column: "Town"}' in text
    assert any(n.startswith("fields.city:") and '"Town"' in n for n in draft.notes)
    assert_rows_map(draft, header, rows)


def test_uncommenting_a_suggestion_gives_a_valid_mapping() -> None:
    header = ["id", "City", "Town"]
    rows = [["1", "Tehran", "Karaj"], ["2", "Shiraz", "Rey"]]
    text = draft_mapping(header, rows).yaml
    chosen = text.replace('  # city: {column: "City"}', '  city: {column: "City"}')
    chosen = "\n".join(x for x in chosen.splitlines() if "type: string" not in x or "City" not in x)
    assert chosen != text
    mapping = parse_mapping(chosen)
    assert mapping.fields["city"].column == "City"
    RowMapper(mapping, header, 0)


def test_hash_column_named_email_is_a_hashed_email() -> None:
    header = ["id", "email_sha256", "digest"]
    hashes = ["a" * 64, "0123456789abcdef" * 4]
    rows = [["1", hashes[0], hashes[0]], ["2", hashes[1], hashes[1]]]
    draft = draft_mapping(header, rows)
    assert draft.hashed == {"hashedEmail": "email_sha256"}
    assert draft.fields == {}
    assert draft.custom == {"digest": ("digest", "string", None)}
    mapping, _ = compiled(draft, header)
    assert mapping.hashed["hashedEmail"].column == "email_sha256"
    assert_rows_map(draft, header, rows)


def test_a_second_email_hash_column_is_kept_as_text() -> None:
    header = ["id", "email_hash", "old email hash"]
    rows = [["1", "a" * 64, "b" * 64], ["2", "c" * 64, "d" * 64]]
    draft = draft_mapping(header, rows)
    assert draft.hashed == {"hashedEmail": "email_hash"}
    assert draft.custom == {"old_email_hash": ("old email hash", "string", None)}
    assert_rows_map(draft, header, rows)


def test_hashed_phone() -> None:
    header = ["id", "Mobile Hash"]
    rows = [["1", "F" * 64]]
    assert draft_mapping(header, rows).hashed == {"hashedPhoneNumber": "Mobile Hash"}


# --- the user id ------------------------------------------------------------------


def test_an_id_that_repeats_gives_way_to_a_unique_column() -> None:
    header = ["customer_id", "member number", "name"]
    rows = [["7", "m1", "a"], ["7", "m2", "b"], ["8", "m3", "c"]]
    draft = draft_mapping(header, rows)
    assert draft.user_id == "member number"
    assert any(n.startswith("user_id:") and '"customer_id"' in n for n in draft.notes)
    assert_rows_map(draft, header, rows)


def test_no_id_name_takes_the_most_id_like_unique_column_and_says_so() -> None:
    header = ["First Name", "Email", "note"]
    rows = [["Ali", "a@x.com", "x"], ["Ali", "b@x.com", "y"]]
    draft = draft_mapping(header, rows)
    assert draft.user_id == "Email"
    (line,) = [x for x in check_lines(draft) if x.startswith("user_id:")]
    assert "Confirm" in line
    assert draft.fields["email"] == "Email"  # the id column is still an email
    assert_rows_map(draft, header, rows)


def test_no_unique_column_takes_the_first_loudly() -> None:
    header = ["customer_id", "tier"]
    rows = [["1", "gold"], ["1", "gold"], ["", "silver"]]
    draft = draft_mapping(header, rows)
    assert draft.user_id == "customer_id"
    assert draft.notes[0].startswith("user_id: NO COLUMN HAS A PRESENT, UNIQUE VALUE")
    compiled(draft, header)


def test_no_sampled_rows() -> None:
    header = ["name", "customer id", "Mobile"]
    draft = draft_mapping(header, [])
    assert draft.user_id == "customer id"
    assert draft.fields == {"phoneNumber": "Mobile"}
    assert [n.split(":", 1)[0] for n in draft.notes] == ["user_id", "fields.phoneNumber"]
    compiled(draft, header)


# --- awkward headers --------------------------------------------------------------


def test_duplicate_and_blank_headers() -> None:
    header, _display = make_header(["id", "", "Email", "Email", "", "Email"])
    assert header == ["id", "column_2", "Email", "Email#2", "column_5", "Email#3"]
    rows = [["1", "x", "a@x.com", "b@x.com", "", "c@x.com"], ["2", "", "d@x.com", "", "z", ""]]
    draft = draft_mapping(header, rows)
    # validate rejects the bare name of a repeated header, so "Email" is left out.
    assert "Email" not in draft.fields.values()
    assert any('"Email"' in n and "cannot be mapped" in n for n in draft.notes)
    assert list(draft.custom) == ["column_2", "email_2", "column_5", "email_3"]
    # Email#2 and Email#3 fit email equally well: both are offered, neither is chosen.
    assert "email" not in draft.fields
    assert any(n.startswith("fields.email:") for n in draft.notes)
    assert_rows_map(draft, header, rows)


def test_yaml_hostile_names_survive() -> None:
    names = [
        "id: #1", '"quoted"', "- dash", "yes", "null", "123", "%d", "a\u2028b", "c\x85d",
        "tab\there", "{brace}", "&anchor", "*alias", "!tag", "'single'", "ر ی", "\U0001f600",
        "e\x7fz", "key: value # comment",
    ]  # fmt: skip
    header, _ = make_header(names)
    rows = [[f"{i}-{j}" for j in range(len(header))] for i in range(3)]
    draft = draft_mapping(header, rows, source_name="we:ird\n# name.csv", sheet="- 'x'")
    mapping, _ = compiled(draft, header)
    assert mapping.user_id.column == "id: #1"
    assert sorted(c for _, c in mapping.column_specs()) == sorted(header)
    assert all(key.isascii() and not key[0].isdigit() for key in draft.custom)
    assert_rows_map(draft, header, rows)


def test_custom_keys_are_snake_case_and_unique() -> None:
    header = ["id", "Total Spent", "totalSpent", "total_spent", "۲۰۲۴ سال", "日本", "Café"]
    rows = [["1", "a", "b", "c", "d", "e", "f"]]
    draft = draft_mapping(header, rows)
    assert list(draft.custom) == [
        "total_spent",
        "total_spent_2",
        "total_spent_3",
        "c_2024_sal",
        "column_6",
        "cafe",
    ]


def test_no_usable_column() -> None:
    draft = draft_mapping(["\u3000x"], [["1"]])
    assert draft.user_id is None
    assert draft.notes


# --- properties -------------------------------------------------------------------

NAMES = st.one_of(
    st.text(max_size=8),
    st.sampled_from(
        ["id", "customer_id", "Mobile", "E-mail", "DOB", "Gender", "City", "town", "نام",
         "کد مشتری", "email_sha256", "Phone", "joined", "#", "a#2", " ", "yes", "x"]
    ),
)  # fmt: skip
CELLS = st.one_of(
    st.text(max_size=10),
    st.sampled_from(
        ["", "1", "0", "yes", "12.5", "-3", "2024-01-02", "2024-01-02T03:04:05+03:30",
         "03/04/2021", "13/04/2021", "04/13/2021", "1370/05/12", "1402-13-40", "09121122333",
         "+44 7400 123456", "a@b.com", '{"a": 1}', "[]", "a" * 64, "۱۲", "male", "زن",
         "20240102", "0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00", "nan", "1e999",
         "31/02/2020", "00:00", "1/1/1", "1399/12/30"]
    ),
)  # fmt: skip


@st.composite
def samples(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    header, _ = make_header(draw(st.lists(NAMES, min_size=1, max_size=6)))
    height = draw(st.integers(0, 6))
    rows = [
        draw(st.lists(CELLS, min_size=len(header), max_size=len(header))) for _ in range(height)
    ]
    return header, rows


def usable(name: str, header: list[str]) -> bool:
    repeated = {n.split("#", 1)[0] for n in header if "#" in n}
    return bool(name) and name == name.strip() and name not in repeated


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(samples())
def test_any_draft_validates_unchanged(sample: tuple[list[str], list[list[str]]]) -> None:
    header, rows = sample
    draft = draft_mapping(header, rows, source_name="x.csv")
    if not any(usable(name, header) for name in header):
        assert draft.user_id is None
        return
    mapping, mapper = compiled(draft, header)
    assert mapping.user_id.column == draft.user_id
    assert {k: s.column for k, s in mapping.fields.items()} == draft.fields
    assert {k: h.column for k, h in mapping.hashed.items()} == draft.hashed
    assert {
        k: (s.column, s.kind, s.formats[0] if s.formats else None)
        for k, s in mapping.custom.items()
    } == draft.custom
    noted = {note.split(":", 1)[0] for note in draft.notes}
    for row in rows:
        result = mapper.map_row(row)
        if isinstance(result, MappedRow):
            continue
        for problem in result:
            # Custom types and hashes accept every sampled cell; an id or a field only
            # fails a sampled row when its line is marked CHECK.
            assert problem.path in noted, (problem, draft.yaml)
    for line in draft.yaml.splitlines():
        assert "\n" not in line and "\r" not in line


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=12), min_size=1, max_size=8))
def test_comments_never_break_the_yaml(names: list[str]) -> None:
    header, _ = make_header(names)
    draft = draft_mapping(header, [list(header)], source_name=names[0], sheet=names[-1])
    loaded = yaml.safe_load(draft.yaml)
    if draft.user_id is not None:
        assert loaded["user_id"] == draft.user_id
        assert loaded["source"].get("sheet", "") == names[-1]


def test_standard_fields_are_the_configs() -> None:
    draft = draft_mapping(CRM_HEADER, CRM_ROWS)
    assert set(draft.fields) <= set(STANDARD_FIELDS)


# --- speed ------------------------------------------------------------------------


def _wide_export(count: int) -> tuple[list[str], list[list[str]]]:
    """``count`` rows of 60 columns of every kind init-mapping tells apart."""
    rng = random.Random(7)
    makers: list[Callable[[int], str]] = [
        lambda i: str(100000 + i),
        lambda i: rng.choice(["Ali", "Sara", "Reza", "Mina"]),
        lambda i: f"user{i}@example.com",
        lambda i: f"0912{rng.randrange(10**7):07d}",
        lambda i: f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(1950, 2005)}",
        lambda i: str(rng.randrange(1000)),
        lambda i: f"{rng.random() * 100:.2f}",
        lambda i: rng.choice(["yes", "no"]),
        lambda i: f"2024-01-{rng.randint(1, 28):02d}T10:{rng.randint(0, 59):02d}:00",
        lambda i: "".join(rng.choice("abcdefghij klmnop") for _ in range(12)),
        lambda i: f"13{rng.randint(50, 99)}/{rng.randint(1, 12):02d}/{rng.randint(1, 29):02d}",
        lambda i: f"text {i}" if i % 50 else "N/A",
    ]
    header = [f"col {n}" for n in range(60)]
    header[0] = "customer_id"
    columns = [makers[n % len(makers)] for n in range(60)]
    return header, [[make(i) for make in columns] for i in range(count)]


def _calls_to_draft(header: list[str], rows: list[list[str]]) -> int:
    """Function calls (Python and C) made while drafting: a measure of work, not time."""
    calls = 0

    def count(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(count)
    try:
        draft = draft_mapping(header, rows)
    finally:
        sys.setprofile(None)
    compiled(draft, header)
    return calls


def test_drafting_work_grows_linearly_with_the_sample() -> None:
    # init-mapping drafts from up to 2,000 rows × any number of columns: the work per
    # cell must stay a small constant (about 33 calls today), and twice the rows must
    # cost about twice the work, not four times.
    small = _calls_to_draft(*_wide_export(150))
    large = _calls_to_draft(*_wide_export(300))
    assert large < 2.2 * small, (small, large)
    assert large / (300 * 60) < 50, large


# --- a CRM export with an unusual id column, contact fields and grouped numbers ------

FAKER_HEADER = ["Account #", "First Name", "Phone 1", "Email", "Lifetime Value", "Visits"]


def _faker_rows(count: int) -> list[list[str]]:
    return [
        [
            f"AC-{1000 + i}",
            "Ali" if i % 2 else "Sara",
            f"0912{i:07d}" if i % 3 else f"+1 702 555 {i % 10000:04d}",
            f"user{i}@example.com",
            f"{i * 1234.56:,.2f}",
            f"{i * 1000:,}",
        ]
        for i in range(1, count + 1)
    ]


def test_an_id_named_column_wins_over_unique_contact_fields() -> None:
    rows = _faker_rows(120)
    draft = draft_mapping(FAKER_HEADER, rows)
    assert draft.user_id == "Account #"
    line = next(line for line in draft.yaml.splitlines() if line.startswith("user_id:"))
    assert 'preferred to "Phone 1", "Email", also unique, because phones and emails change' in line
    assert_rows_map(draft, FAKER_HEADER, rows)


def test_a_contact_field_chosen_as_id_says_why_it_is_a_risk() -> None:
    header = ["Email", "Name"]
    rows = [[f"u{i}@example.com", "Ali"] for i in range(30)]
    draft = draft_mapping(header, rows)
    assert draft.user_id == "Email"
    assert any("it is a contact field: phones and emails change" in note for note in draft.notes)


def test_thousands_separators_are_recognised_and_proposed() -> None:
    header = ["id", "money", "count", "swiss", "persian", "dots", "mixed"]
    rows = [
        [
            str(i),
            f"{i * 1234.5:,.2f}",
            f"{i * 1000:,}",
            f"{i * 1000:,}".replace(",", "'"),
            f"{i * 1000:,}".replace(",", "٬").translate(str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")),
            f"{i * 1_000_000:,}".replace(",", "."),
            "1,5" if i == 3 else f"{i * 1000:,}",  # "1,5" is no grouping: not a number
        ]
        for i in range(1, 40)
    ]
    draft = draft_mapping(header, rows)
    mapping, mapper = compiled(draft, header)
    assert {k: (v.kind, v.thousands) for k, v in mapping.custom.items()} == {
        "money": ("float", ","),
        "count": ("int", ","),
        "swiss": ("int", "'"),
        "persian": ("int", "٬"),
        "dots": ("int", "."),
        "mixed": ("string", None),
    }
    row = mapper.map_row(rows[1])
    assert isinstance(row, MappedRow)
    assert row.fields["customAttributes"]["money"] == 2469.0
    assert row.fields["customAttributes"]["persian"] == 2000


def test_a_lone_dot_group_is_not_taken_for_thousands() -> None:
    # "1.234" could be one and a quarter: without 1.234.567 somewhere, it is a decimal.
    draft = draft_mapping(["id", "x"], [[str(i), f"{i}.234"] for i in range(1, 20)])
    mapping, _ = compiled(draft, ["id", "x"])
    assert (mapping.custom["x"].kind, mapping.custom["x"].thousands) == ("float", None)


def test_optional_contact_fields_are_drafted_with_drop_field() -> None:
    rows = _faker_rows(60)
    rows[5][2] = "call me"  # one bad phone must not cost the row
    draft = draft_mapping(FAKER_HEADER, rows)
    mapping, mapper = compiled(draft, FAKER_HEADER)
    assert mapping.fields["phoneNumber"].on_invalid == "drop_field"
    assert mapping.fields["email"].on_invalid == "drop_field"
    assert mapping.fields["firstName"].on_invalid == "fail_row"
    row = mapper.map_row(rows[5])
    assert isinstance(row, MappedRow) and "phoneNumber" not in row.fields
    assert any("those rows are sent without it (on_invalid: drop_field)" in n for n in draft.notes)


def test_numbers_of_several_countries_get_a_region_list() -> None:
    header = ["id", "phone"]
    phones = [f"0912 {i:03d} 45{i % 100:02d}" for i in range(40)]
    phones += [f"(702) 555-{i:04d}" for i in range(20)]
    phones += [f"07911 1234{i:02d}" for i in range(10)]
    rows = [[str(i), phone] for i, phone in enumerate(phones)]
    draft = draft_mapping(header, rows)
    mapping, mapper = compiled(draft, header)
    spec = mapping.fields["phoneNumber"]
    assert (spec.phone_format, spec.region) == ("e164", ("IR", "US", "GB"))
    for row in rows:
        assert isinstance(mapper.map_row(row), MappedRow), row


def test_numbers_with_extensions_still_count_as_phone_numbers() -> None:
    header = ["id", "phone"]
    phones = [f"0912 {i:03d} 45{i % 100:02d}" for i in range(20)]
    phones += [f"(702) 555-01{i:02d} x{i + 10}" for i in range(20)]
    rows = [[str(i), phone] for i, phone in enumerate(phones)]
    mapping, mapper = compiled(draft_mapping(header, rows), header)
    assert mapping.fields["phoneNumber"].region == ("IR", "US")
    row = mapper.map_row(rows[-1])
    assert isinstance(row, MappedRow) and row.fields["phoneNumber"] == "+17025550119"
