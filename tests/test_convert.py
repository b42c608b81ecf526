"""Every converter rule as a table, plus hypothesis properties."""

from __future__ import annotations

import contextlib
import math
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from importer.core import convert as cv
from importer.errors import ConversionError

TEHRAN = cv.get_timezone("Asia/Tehran")


def test_clean_trims_invisible_whitespace() -> None:
    assert cv.clean("\u00a0\u200b Ali \u200c\ufeff\t") == "Ali"


def test_persian_and_arabic_digits_are_digits() -> None:
    assert cv.ascii_digits("۰۱۲۳۴۵۶۷۸۹ ٠١٢٣٤٥٦٧٨٩") == "0123456789 0123456789"


@pytest.mark.parametrize(
    ("text", "thousands", "expected"),
    [
        ("12", None, 12),
        ("-7", None, -7),
        ("12.0", None, 12),
        ("12.00", None, 12),
        ("۱۲۳", None, 123),
        ("1,234", ",", 1234),
        ("1.234.567", ".", 1234567),
    ],
)
def test_int_accepts(text: str, thousands: str | None, expected: int) -> None:
    assert cv.make_int(thousands)(text) == expected


@pytest.mark.parametrize("text", ["12.5", "1,234", "abc", "1e3", "", "--1", "0x10"])
def test_int_rejects(text: str) -> None:
    with pytest.raises(ConversionError) as caught:
        cv.make_int()(text)
    assert caught.value.reason == "not a whole number"
    if text == "1,234":
        assert "thousands" in caught.value.hint


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12.5", 12.5), ("-0.25", -0.25), (".5", 0.5), ("1e3", 1000.0), ("۱۲٫۵", 12.5), ("7", 7.0)],
)
def test_float_accepts(text: str, expected: float) -> None:
    assert cv.make_float()(text) == expected


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "12,5", "x"])
def test_float_rejects_non_finite_and_text(text: str) -> None:
    with pytest.raises(ConversionError):
        cv.make_float()(text)


@pytest.mark.parametrize("text", ["true", "TRUE", "Yes", "y", "1", "t", "On", "بله", "۱"])
def test_bool_true(text: str) -> None:
    assert cv.make_bool()(text) is True


@pytest.mark.parametrize("text", ["false", "No", "N", "0", "f", "OFF", "خیر", "۰"])
def test_bool_false(text: str) -> None:
    assert cv.make_bool()(text) is False


def test_bool_custom_values_and_rejection() -> None:
    convert = cv.make_bool(true_values=["active"], false_values=["churned"])
    assert convert("Active") is True
    assert convert("churned") is False
    with pytest.raises(ConversionError, match="not a yes/no value"):
        convert("maybe")


@pytest.mark.parametrize(
    ("text", "expected"),
    [('{"a": [1, 2]}', {"a": [1, 2]}), ("[1, {}]", [1, {}])],
)
def test_json_accepts_objects_and_arrays(text: str, expected: Any) -> None:
    assert cv.to_json(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{'a': 1}", "not valid JSON"),
        ('{"a": NaN}', "not valid JSON"),
        ("42", "JSON is not an object or array"),
        ('"text"', "JSON is not an object or array"),
        ("[" * 100_000, "not valid JSON"),
    ],
)
def test_json_rejects(text: str, reason: str) -> None:
    with pytest.raises(ConversionError) as caught:
        cv.to_json(text)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("male", "Male"), ("M", "Male"), ("man", "Male"), ("مرد", "Male"), ("آقا", "Male"),
        ("female", "Female"), ("F", "Female"), ("Woman", "Female"), ("زن", "Female"),
        ("خانم", "Female"), ("other", "Other"), ("O", "Other"),
    ],
)  # fmt: skip
def test_gender_synonyms(text: str, expected: str) -> None:
    assert cv.make_gender()(text) == expected


def test_gender_values_extend_synonyms_and_unknown_fails() -> None:
    convert = cv.make_gender({"1": "Male", "2": "Female"})
    assert convert("1") == "Male"
    assert convert("f") == "Female"
    with pytest.raises(ConversionError, match="unknown gender"):
        convert("x")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Ali@Example.COM", "ali@example.com"), ("a.b+c@sub.example.co", "a.b+c@sub.example.co")],
)
def test_email_is_lower_cased(text: str, expected: str) -> None:
    assert cv.to_email(text) == expected


@pytest.mark.parametrize("text", ["ali.at.example.com", "a@b", "a b@c.com", "a@@b.com", "@b.com"])
def test_email_rejects(text: str) -> None:
    with pytest.raises(ConversionError, match="not an email address"):
        cv.to_email(text)


# --- dates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-11-20", date(2024, 11, 20)),
        ("2024-11-20T11:24:03", datetime(2024, 11, 20, 11, 24, 3)),
        ("2024-11-20 11:24", datetime(2024, 11, 20, 11, 24)),
        ("2024-11-20T11:24:03.5Z", datetime(2024, 11, 20, 11, 24, 3, 500000, tzinfo=UTC)),
        ("2024-11-20T11:24:03.123456789Z", datetime(2024, 11, 20, 11, 24, 3, 123456, tzinfo=UTC)),
        (
            "2024-11-20T11:24:03+03:30",
            datetime(2024, 11, 20, 11, 24, 3, tzinfo=cv.timezone_offset(210)),
        ),
        ("۲۰۲۴-۱۱-۲۰", date(2024, 11, 20)),
    ],
)
def test_iso_dates(text: str, expected: cv.Moment) -> None:
    assert cv.parse_iso(text) == expected


@pytest.mark.parametrize(
    "text", ["03/04/2021", "2021/03/04", "20 Nov 2024", "2024-13-01", "2024-02-30"]
)
def test_without_format_only_iso_is_accepted(text: str) -> None:
    with pytest.raises(ConversionError):
        cv.make_date_converter("birthday", [], UTC)(text)


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ("03/04/2021", '"%d/%m/%Y"` (day first) or `format: "%m/%d/%Y"` (month first)'),
        ("25/04/2021", '"%d/%m/%Y"` to the field (day first)'),
        ("04-25-2021", '"%m-%d-%Y"` to the field (month first)'),
        ("1402/05/01", '"jalali:%Y/%m/%d"'),
        ("2021/05/01", '"%Y/%m/%d"'),
    ],
)
def test_ambiguous_dates_are_errors_that_suggest_a_format(text: str, suggestion: str) -> None:
    with pytest.raises(ConversionError) as caught:
        cv.make_date_converter("birthday", [], UTC)(text)
    assert caught.value.reason == "not an ISO 8601 date"
    assert suggestion in caught.value.hint


def test_birthday_is_midnight_utc_of_the_calendar_date_whatever_the_zone() -> None:
    convert = cv.make_date_converter("birthday", ["%d/%m/%Y"], TEHRAN)
    assert convert("01/05/1990") == 641520000000  # 1990-05-01T00:00:00Z
    assert convert("31/12/1969") == -86400000


def test_birthday_from_an_excel_datetime_keeps_the_written_date() -> None:
    convert = cv.make_date_converter("birthday", ["%d/%m/%Y"], TEHRAN)
    assert convert("1990-05-01") == 641520000000
    assert convert("1990-05-01T00:00:00") == 641520000000


def test_naive_datetime_is_read_in_the_zone_then_converted_to_utc() -> None:
    convert = cv.make_date_converter("datetime", ["%Y-%m-%d %H:%M:%S"], TEHRAN)
    assert convert("2024-11-20 14:54:03") == "2024-11-20T11:24:03.000Z"
    as_time = cv.make_date_converter("time", ["%Y-%m-%d %H:%M:%S"], TEHRAN)
    assert as_time("2024-11-20 14:54:03") == 1732101843000


def test_explicit_offsets_are_honoured() -> None:
    convert = cv.make_date_converter("datetime", [], TEHRAN)
    assert convert("2024-11-20T11:24:03Z") == "2024-11-20T11:24:03.000Z"
    assert convert("2024-11-20T12:24:03.250+01:00") == "2024-11-20T11:24:03.250Z"


def test_custom_date_is_iso_midnight_utc() -> None:
    assert cv.make_date_converter("date", [], TEHRAN)("2024-02-29") == "2024-02-29T00:00:00.000Z"


def test_format_list_is_tried_in_order() -> None:
    convert = cv.make_date_converter("date", ["%d/%m/%Y", "%Y%m%d"], UTC)
    assert convert("05/06/2020") == "2020-06-05T00:00:00.000Z"
    assert convert("20200605") == "2020-06-05T00:00:00.000Z"
    with pytest.raises(ConversionError) as caught:
        convert("June 5")
    assert "'%d/%m/%Y' or '%Y%m%d'" in caught.value.hint


@pytest.mark.parametrize(
    ("fmt", "text", "expected"),
    [
        ("epoch_s", "1732101843", "2024-11-20T11:24:03.000Z"),
        ("epoch_s", "1732101843.5", "2024-11-20T11:24:03.500Z"),
        ("epoch_ms", "1732101843250", "2024-11-20T11:24:03.250Z"),
        ("excel", "45616", "2024-11-20T00:00:00.000Z"),
        ("excel", "45616.5", "2024-11-20T12:00:00.000Z"),
        ("jalali:%Y/%m/%d", "1403/08/30", "2024-11-20T00:00:00.000Z"),
        ("jalali:%Y/%m/%d", "۱۴۰۳/۰۸/۳۰", "2024-11-20T00:00:00.000Z"),
        ("jalali:%Y/%m/%d %H:%M", "1403/08/30 14:54", "2024-11-20T14:54:00.000Z"),
        ("%d.%m.%y", "20.11.24", "2024-11-20T00:00:00.000Z"),
        ("%d %b %Y", "20 Nov 2024", "2024-11-20T00:00:00.000Z"),
    ],
)
def test_named_and_custom_formats(fmt: str, text: str, expected: str) -> None:
    assert cv.make_date_converter("datetime", [fmt], UTC)(text) == expected


def test_a_date_in_a_datetime_field_is_midnight_in_the_zone() -> None:
    convert = cv.make_date_converter("datetime", ["jalali:%Y/%m/%d"], TEHRAN)
    assert convert("1403/08/30") == "2024-11-19T20:30:00.000Z"


def test_jalali_format_does_not_fall_back_to_gregorian_iso() -> None:
    convert = cv.make_date_converter("date", ["jalali:%Y-%m-%d"], UTC)
    assert convert("1403-08-30") == "2024-11-20T00:00:00.000Z"
    with pytest.raises(ConversionError):
        convert("1403-12-30 00")


@pytest.mark.parametrize(
    ("fmt", "text"),
    [("%d/%m/%Y", "31/02/1990"), ("%d/%m/%Y", "00/01/1990"), ("jalali:%Y/%m/%d", "1402/12/30")],
)
def test_impossible_dates_say_so(fmt: str, text: str) -> None:
    with pytest.raises(ConversionError) as caught:
        cv.make_date_converter("birthday", [fmt], UTC)(text)
    assert caught.value.reason in ("not a real date", "not a valid Solar Hijri date")


def test_fast_format_matches_strptime() -> None:
    fast = cv.make_strptime("%Y-%m-%d %H:%M:%S")
    assert fast("2024-1-2 3:04:05") == datetime.strptime("2024-1-2 3:04:05", "%Y-%m-%d %H:%M:%S")


def test_epoch_millis_is_exact() -> None:
    moment = datetime(2024, 11, 20, 11, 24, 3, 999999, tzinfo=UTC)
    assert cv.epoch_millis(moment) == 1732101843999
    assert cv.epoch_millis(cv.EPOCH - timedelta(milliseconds=1)) == -1


def test_cached_converter_still_raises_for_bad_values() -> None:
    convert = cv.cached(cv.make_int())
    assert convert("5") == 5 and convert("5") == 5
    with pytest.raises(ConversionError):
        convert("x")


# --- properties ------------------------------------------------------------------------

CONVERTERS = [
    cv.make_int(),
    cv.make_int(","),
    cv.make_float(),
    cv.make_bool(),
    cv.to_json,
    cv.make_gender(),
    cv.to_email,
    cv.make_phone("national", "IR"),
    cv.make_phone("e164", "IR"),
    cv.make_phone("keep", None),
    cv.make_date_converter("birthday", [], UTC),
    cv.make_date_converter("time", ["%d/%m/%Y %H:%M"], TEHRAN),
    cv.make_date_converter("datetime", ["jalali:%Y/%m/%d", "excel"], UTC),
    cv.make_date_converter("date", ["epoch_s", "epoch_ms", "%d %b %Y"], UTC),
]

cell_text = st.one_of(
    st.text(),
    st.text(alphabet="0123456789۰۱۲۳۴۵۶۷۸۹/-.:+ TZe,", max_size=30),
    st.from_regex(
        r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?)?", fullmatch=True
    ),
)


@given(text=cell_text)
def test_converters_raise_only_conversion_error(text: str) -> None:
    for convert in CONVERTERS:
        with contextlib.suppress(ConversionError):
            convert(text)


@given(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)))
def test_iso_round_trip_through_datetime_converter(moment: datetime) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    text = moment.isoformat(timespec="milliseconds") + "Z"
    assert cv.make_date_converter("datetime", [], TEHRAN)(text) == text


@given(st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)))
def test_birthday_is_a_whole_number_of_days(day: date) -> None:
    millis = cv.make_date_converter("birthday", [], TEHRAN)(day.isoformat())
    assert isinstance(millis, int)
    assert millis % 86_400_000 == 0
    assert cv.EPOCH_DATE + timedelta(days=millis // 86_400_000) == day


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_int_round_trip(number: int) -> None:
    assert cv.make_int()(str(number)) == number
    assert cv.make_int(",")(f"{number:,}") == number


# --- the fixed-width fast path agrees with the general path -----------------------------

FAST_PATTERNS = ["%Y-%m-%d %H:%M:%S", "%d/%m/%Y", "%Y%m%d%H%M", "%m-%d-%Y %H:%M", "%Y.%m.%d"]
ZONES = [
    "UTC", "Asia/Tehran", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu",
    "America/St_Johns", "Pacific/Kiritimati",
]  # fmt: skip


def _both(pattern: str, kind: str, zone_name: str) -> tuple[cv.Converter, cv.Converter]:
    zone = cv.get_timezone(zone_name)
    fast = cv.make_date_converter(kind, [pattern], zone)
    general = cv.make_date_converter(kind, [pattern, "%Y"], zone)  # a list: no fast path
    return fast, general


def _outcome(convert: cv.Converter, text: str) -> object:
    try:
        return convert(text)
    except ConversionError as exc:
        return ("error", exc.reason)


@given(
    st.sampled_from(FAST_PATTERNS),
    st.sampled_from(["birthday", "date", "time", "datetime"]),
    st.sampled_from(ZONES),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2100, 1, 1)),
)
def test_fast_path_equals_general_path_on_valid_cells(
    pattern: str, kind: str, zone: str, moment: datetime
) -> None:
    fast, general = _both(pattern, kind, zone)
    text = moment.strftime(pattern)
    assert _outcome(fast, text) == _outcome(general, text)


@given(
    st.sampled_from(FAST_PATTERNS),
    st.sampled_from(["birthday", "time", "datetime"]),
    st.text(alphabet="0123456789-/:. ۱x", min_size=6, max_size=19),
)
def test_fast_path_equals_general_path_on_any_cell(pattern: str, kind: str, text: str) -> None:
    fast, general = _both(pattern, kind, "Asia/Tehran")
    assert _outcome(fast, text) == _outcome(general, text)


@pytest.mark.parametrize(
    ("zone", "text", "expected"),
    [
        ("America/New_York", "2024-03-10 01:30:00", "2024-03-10T06:30:00.000Z"),
        ("America/New_York", "2024-03-10 03:30:00", "2024-03-10T07:30:00.000Z"),
        ("Asia/Tehran", "2020-03-21 12:00:00", "2020-03-21T07:30:00.000Z"),
        ("Asia/Tehran", "2024-03-21 12:00:00", "2024-03-21T08:30:00.000Z"),
    ],
)
def test_days_when_the_clock_changes_are_exact(zone: str, text: str, expected: str) -> None:
    convert = cv.make_date_converter("datetime", ["%Y-%m-%d %H:%M:%S"], cv.get_timezone(zone))
    assert convert(text) == expected


def _reference_float(text: str) -> object:
    """The documented rule, written the slow, obvious way."""
    import re

    if not re.fullmatch(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", text):
        return ("error", "not a number")
    value = float(text)
    return ("error", "number too large") if math.isinf(value) else value


@given(st.text(alphabet="0123456789.eE+-_ nafiINFty", max_size=12))
def test_float_fast_path_follows_the_documented_rule(text: str) -> None:
    assert _outcome(cv.make_float(), text) == _reference_float(text)
