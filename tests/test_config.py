"""Mapping validation: every problem at once, each with its YAML path."""

from __future__ import annotations

from pathlib import Path

import pytest

from importer.core.config import load_mapping, parse_mapping
from importer.errors import MappingError
from tests.cli_helpers import SAMPLE_CSV, assert_no_traceback, cli


def problems(text: str) -> list[str]:
    with pytest.raises(MappingError) as caught:
        parse_mapping(text)
    return [str(p) for p in caught.value.problems]


def test_the_example_mapping_is_valid() -> None:
    mapping = load_mapping(Path(__file__).parent.parent / "mappings" / "customers.yaml")
    assert mapping.user_id.column == "customer_id"
    assert mapping.fields["phoneNumber"].phone_format == "national"
    assert mapping.custom["orders"].kind == "int"
    assert mapping.source.timezone == "Asia/Tehran"


def test_every_problem_is_reported_with_its_path() -> None:
    found = problems(
        """
user_id: id
time: {column: t, format: "%Q"}
source: {delimiter: ":", encoding: klingon, timezone: Mars/Base, header_row: 0, sheat: 1}
fields:
  firstname: fn
  phoneNumber: {column: p, phone_format: national}
  gender: {column: g, values: {x: Unknown}}
  birthday: {column: b, format: [iso, "jalali:%B"]}
custom:
  orders: {column: orders, type: integer}
  flag: {column: f, type: bool, thousands: ","}
  both: {column: a, value: 1}
hashed:
  hashedEmail: {from: email}
unmapped: everything
empty: zero
colour: blue
"""
    )
    expected = [
        "colour: unknown key",
        "time.format: '%Q' in '%Q' is not a date directive",
        "source.sheat: unknown key (did you mean 'sheet'?)",
        "source.encoding: unknown encoding 'klingon'",
        "source.delimiter: found ':'",
        "source.header_row: expected a line number from 1, found 0",
        "source.timezone: unknown time zone 'Mars/Base'",
        "fields.firstname: unknown Metrix user field (did you mean 'firstName'?)",
        "fields.phoneNumber.region: phone_format: national needs the numbers' country",
        "fields.gender.values.x: found 'Unknown'; a gender must be Male, Female or Other",
        "fields.birthday.format[1]: cannot read Solar Hijri dates with 'jalali:%B'",
        "custom.orders.type: unknown type 'integer' (did you mean 'int'?); expected one of: "
        "string, int, float, "
        "bool, json, date, datetime",
        "custom.flag.thousands: not a setting of a custom attribute of type bool",
        "custom.both: give exactly one of `column:` (read from the file) or `value:`",
        "hashed.hashedEmail.from: fields.email is not mapped",
        "unmapped: found 'everything'; expected one of: ignore, custom",
        "empty: found 'zero'; expected one of: omit, null",
    ]
    for start in expected:
        assert any(p.startswith(start) for p in found), (start, found)
    assert len(found) == len(expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a mapping with at least `user_id:`, found an empty file"),
        ("fields: {}", "user_id: missing"),
        ("user_id: [a, b]", "user_id: expected a column name or a spec"),
        ("user_id: id\nfields: [a]", "fields: expected a mapping of names to columns"),
        ("user_id: id\nfields:\n  hashedEmail: e", "(hashed fields go under `hashed:`)"),
        ("user_id: id\n  bad: indent", "line 2, column 6: not valid YAML"),
        ("user_id: id\nprivacy: {send_clear: maybe}", "privacy.send_clear: expected true or false"),
        (
            "user_id: id\ncustom: {x: {column: c, type: date, format: nope}}",
            "unknown format 'nope'",
        ),
    ],
)
def test_single_problems(text: str, message: str) -> None:
    assert any(message in p for p in problems(text)), problems(text)


def test_missing_mapping_file_is_a_mapping_error(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match="does not exist"):
        load_mapping(tmp_path / "nope.yaml")


def test_send_clear_false_adds_hashes_of_email_and_phone() -> None:
    mapping = parse_mapping(
        "user_id: id\nfields: {email: e, phoneNumber: p}\nprivacy: {send_clear: false}"
    )
    assert set(mapping.hashed) == {"hashedEmail", "hashedPhoneNumber"}


def test_yaml_booleans_in_word_lists_become_words() -> None:
    mapping = parse_mapping(
        "user_id: id\ncustom: {x: {column: c, type: bool, true_values: [yes, da]}}"
    )
    assert mapping.custom["x"].true_values == ("true", "da")


def test_fingerprint_changes_with_content_and_order() -> None:
    a = parse_mapping("user_id: id\nfields: {email: e}")
    same = parse_mapping("user_id: id  # a comment changes nothing\nfields: {email: e}")
    reordered = parse_mapping("fields: {email: e}\nuser_id: id")
    changed = parse_mapping("user_id: id\nfields: {email: mail}")
    assert a.fingerprint == same.fingerprint
    assert len({a.fingerprint, reordered.fingerprint, changed.fingerprint}) == 3


def test_cli_overrides_source_options() -> None:
    mapping = parse_mapping("user_id: id\nsource: {delimiter: ';', sheet: Customers}")
    changed = mapping.with_source(delimiter="\t", sheet=None)
    assert changed.source.delimiter == "\t"
    assert changed.source.sheet == "Customers"


# --- hostile mapping files --------------------------------------------------------

BILLION_LAUGHS = """
user_id: id
custom:
  a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
  c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
  d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
  e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
  f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
  g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
  h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
  i: [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_anchors_are_refused_before_anything_expands() -> None:
    # 9**9 strings if expanded; refused at the first anchor, with its line.
    assert problems(BILLION_LAUGHS) == [
        "line 4, column 6: not valid YAML: anchors and aliases (&name, *name) are not "
        "allowed in a mapping file; write each value out"
    ]


def test_a_lone_alias_is_refused_too() -> None:
    found = problems("user_id: id\nfields: {firstName: *name}\n")
    assert found[0].startswith("line 2, column 21: not valid YAML: anchors and aliases")


def test_a_huge_mapping_file_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("user_id: id\n" + "# padding\n" * 300_000)
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert "the file is 2.9 MB; a mapping file is at most 2 MB" in str(caught.value)
    assert "check that this is the mapping and not the data" in str(caught.value)


def test_surrogate_escapes_are_a_mapping_error_with_their_path() -> None:
    found = problems('user_id: id\ncustom:\n  sushi: {value: "\\ud83c\\udf63"}\n')
    assert found == [
        "custom.sushi.value: holds a UTF-16 surrogate escape (\\ud83c\\udf63): write the "
        "character itself, or \\U0001F363 style escapes for characters beyond \\uFFFF"
    ]
    assert problems('user_id: "\\udfff"\n')[0].startswith("user_id: holds a UTF-16 surrogate")
    # The same character written properly is fine.
    parse_mapping('user_id: id\ncustom:\n  sushi: {value: "\\U0001F363"}\n')


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (BILLION_LAUGHS, "line 4, column 6: not valid YAML: anchors and aliases"),
        ('user_id: id\ncustom:\n  sushi: {value: "\\ud83c\\udf63"}\n', "custom.sushi.value:"),
    ],
)
def test_hostile_mappings_exit_2_through_the_cli(tmp_path: Path, text: str, expected: str) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text(text, encoding="utf-8")
    result = cli("validate", SAMPLE_CSV, "--mapping", mapping, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert_no_traceback(result)
