"""Tests for importer.core.phone: examples, several regions, extensions, properties."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given
from hypothesis import strategies as st

from importer.core.phone import (
    SUPPORTED_REGIONS,
    _digits_ok,
    _split,
    canonical_phone_for_hash,
    make_phone_parser,
    normalize_phone,
    parse_phone,
)
from importer.errors import ConversionError

IR_MOBILE_INPUTS = [
    "+98 912 112 2333",
    "0098 912 112 2333",
    "98 912 112 2333",
    "989121122333",
    "912 112 2333",
    "9121122333",  # an Excel number cell: the leading 0 is gone
    "9121122333.0",  # the same cell read as a float
    "09121122333",
    "0912-112-2333",
    "(0912) 112 2333",
    "0912.112.2333",
    "0912/112/2333",
    "۰۹۱۲۱۱۲۲۳۳۳",  # Persian digits
    "٠٩١٢١١٢٢٣٣٣",  # Arabic-Indic digits
    "۰۹۱۲ ۱۱۲ ۲۳۳۳",
    "+98 (0) 912 112 2333",  # trunk prefix written after the country code
    "+989121122333",
    "98 0912 112 2333",  # country code, then the trunk prefix
]

# (text, regions, national, e164)
CASES = [
    *[(text, "IR", "09121122333", "+989121122333") for text in IR_MOBILE_INPUTS],
    ("021 8888 7777", "IR", "02188887777", "+982188887777"),
    ("02188887777", "IR", "02188887777", "+982188887777"),
    ("2188887777", "IR", "02188887777", "+982188887777"),
    ("09121122333", "ir", "09121122333", "+989121122333"),  # region is case-insensitive
    # numbers with their country code need no region; `national` is for the first
    # region's numbers only, the others stay E.164
    ("+98 21 8888 7777", None, "+982188887777", "+982188887777"),
    ("+1 201 555 0123", "IR", "+12015550123", "+12015550123"),
    ("+44 (0)20 7946 0000", "IR", "+442079460000", "+442079460000"),
    ("0049 89 1234 5678", "GB", "+498912345678", "+498912345678"),
    ("+7 912 345 67 89", "IR", "+79123456789", "+79123456789"),  # any country
    # other regions
    ("(201) 555-0123", "US", "2015550123", "+12015550123"),
    ("1 201 555 0123", "US", "2015550123", "+12015550123"),
    ("506-555-0123", "CA", "5065550123", "+15065550123"),
    ("07400 123456", "GB", "07400123456", "+447400123456"),
    ("020 7946 0000", "GB", "02079460000", "+442079460000"),
    ("030 123456", "DE", "030123456", "+4930123456"),
    ("+49 30 123456", "DE", "030123456", "+4930123456"),
    ("06 12 34 56 78", "FR", "0612345678", "+33612345678"),
    ("050 123 4567", "AE", "0501234567", "+971501234567"),
    ("0501 234 56 78", "TR", "05012345678", "+905012345678"),
    ("0791 234 5678", "IQ", "07912345678", "+9647912345678"),
    ("070 123 4567", "AF", "0701234567", "+93701234567"),
    # several regions: the first where the number is valid
    ("(702) 555-0101", ["IR", "US"], "+17025550101", "+17025550101"),
    ("(702) 555-0101", ["US", "IR"], "7025550101", "+17025550101"),
    ("07911 123456", ["IR", "US", "GB"], "+447911123456", "+447911123456"),
    ("07400 123456", ["IR", "GB"], "07400123456", "+987400123456"),  # valid in both
    ("0912 112 2333", ["IR", "US", "GB"], "09121122333", "+989121122333"),
    ("0912 112 2333", ["GB", "IR"], "+989121122333", "+989121122333"),  # not GB premium rate
]


@pytest.mark.parametrize(("text", "regions", "national", "e164"), CASES)
def test_national(text: str, regions: str | list[str] | None, national: str, e164: str) -> None:
    assert normalize_phone(text, "national", regions) == national


@pytest.mark.parametrize(("text", "regions", "national", "e164"), CASES)
def test_e164(text: str, regions: str | list[str] | None, national: str, e164: str) -> None:
    assert normalize_phone(text, "e164", regions) == e164
    assert parse_phone(text, "national", regions).e164 == e164


@pytest.mark.parametrize(("text", "regions", "national", "e164"), CASES)
def test_canonical_for_hash_is_e164(
    text: str, regions: str | list[str] | None, national: str, e164: str
) -> None:
    assert canonical_phone_for_hash(text, regions) == e164


def test_a_number_is_never_forced_into_a_region_where_it_is_not_valid() -> None:
    # Read as Iranian it would be +98 702 555 0101, which does not exist.
    with pytest.raises(ConversionError) as info:
        normalize_phone("(702) 555-0101", "e164", "IR")
    assert info.value.reason == "not a valid phone number in IR"
    assert "0912 345 6789" in info.value.hint and "+98 912 345 6789" in info.value.hint
    with pytest.raises(ConversionError, match="not a valid phone number in IR or FR"):
        normalize_phone("(702) 555-0101", "e164", ["IR", "FR"])


def test_ambiguous_numbers_are_read_in_the_first_region_and_say_so() -> None:
    # A New York number that is also a valid Tehran number.
    phone = parse_phone("(212) 555-0143", "e164", ["IR", "US"])
    assert (phone.number, phone.ambiguous) == ("+982125550143", ("IR", "US"))
    phone = parse_phone("(212) 555-0143", "national", ["US", "IR"])
    assert (phone.number, phone.ambiguous) == ("2125550143", ("US", "IR"))
    # US and CA share +1: one number, no ambiguity.
    assert parse_phone("(201) 555-0123", "e164", ["US", "CA"]).ambiguous == ()
    # A number with its country code is never ambiguous.
    assert parse_phone("+1 212 555 0143", "e164", ["IR", "US"]).ambiguous == ()


@pytest.mark.parametrize(
    ("text", "number", "extension"),
    [
        ("0912 112 2333 x6413", "+989121122333", "6413"),
        ("0912 112 2333 ext. 12", "+989121122333", "12"),
        ("0912-112-2333 ext 12", "+989121122333", "12"),
        ("+1 702 555 0101 extension 7", "+17025550101", "7"),
        ("(702) 555-0101 #99", "+17025550101", "99"),
        ("+17025550101;ext=5", "+17025550101", "5"),
        ("۰۹۱۲۱۱۲۲۳۳۳ داخلی ۱۲", "+989121122333", "12"),
        ("09121122333", "+989121122333", ""),
    ],
)
def test_extensions_are_split_off(text: str, number: str, extension: str) -> None:
    phone = parse_phone(text, "e164", ["IR", "US"])
    assert (phone.number, phone.extension) == (number, extension)


def test_keep_splits_extensions_too() -> None:
    phone = parse_phone("0912-112-2333 x12", "keep", None)
    assert (phone.number, phone.extension, phone.e164) == ("09121122333", "12", "")


IR_REJECTS = [
    "+",
    "00",
    "0912 112 233",  # too short
    "912 112 233",
    "0912 112 23333",  # too long
    "+98 0 0912 112 2333",  # national number starting with 0 after the trunk prefix
    "+98 912 112 233",
    "+98 912 112 23333",
    "0912-112-2333x",  # an x without an extension
    "phone",
    "۰۹۱۲abc۲۳۳۳",
    "+98 912 +112 2333",  # a second plus
    "0912_112_2333",  # not a separator we accept
    "0912²112233",  # a superscript digit is not a digit here
    "+0098 912 112 2333",  # a plus cannot be followed by 00
]


@pytest.mark.parametrize("text", IR_REJECTS)
@pytest.mark.parametrize("fmt", ["national", "e164"])
def test_rejects(text: str, fmt: str) -> None:
    with pytest.raises(ConversionError) as info:
        normalize_phone(text, fmt, "IR")
    assert info.value.reason in ("not a phone number", "not a valid phone number in IR")
    assert info.value.value == text
    assert "+98 912 345 6789" in info.value.hint


@pytest.mark.parametrize("fmt", ["national", "e164"])
def test_no_country_without_region(fmt: str) -> None:
    with pytest.raises(ConversionError) as info:
        normalize_phone("0912 112 2333", fmt, None)
    assert info.value.reason == "phone number without country code"
    assert "+98 912 112 2333" in info.value.hint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0912-112-2333", "09121122333"),
        ("+98 912 112 2333", "+989121122333"),
        ("0098 912 112 2333", "00989121122333"),
        ("(021) 8888/7777", "02188887777"),
        ("۰۹۱۲ ۱۱۲ ۲۳۳۳", "09121122333"),
        ("12345", "12345"),
        ("9121122333.0", "9121122333"),
    ],
)
@pytest.mark.parametrize("region", ["IR", "US", None])
def test_keep(text: str, expected: str, region: str | None) -> None:
    assert normalize_phone(text, "keep", region) == expected


@pytest.mark.parametrize("text", ["", "+", "1234", "12-34", "abc12345", "0912 112 2333 ext"])
def test_keep_rejects(text: str) -> None:
    with pytest.raises(ConversionError, match="not a phone number"):
        normalize_phone(text, "keep", "IR")


def test_unknown_region_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown phone region") as info:
        normalize_phone("09121122333", "national", "XX")
    assert not isinstance(info.value, ConversionError)


def test_unknown_format_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown phone format") as info:
        normalize_phone("09121122333", "international", "IR")
    assert not isinstance(info.value, ConversionError)


def test_regions_are_libphonenumbers() -> None:
    assert {"IR", "US", "CA", "GB", "DE", "FR", "AE", "TR", "IQ", "AF"} <= SUPPORTED_REGIONS
    assert len(SUPPORTED_REGIONS) > 200


def test_canonical_for_hash_falls_back_to_cleaned_text() -> None:
    assert canonical_phone_for_hash("0912 112 2333", None) == "09121122333"
    assert canonical_phone_for_hash("۰۹۱۲-۱۱۲", "IR") == "0912112"
    assert canonical_phone_for_hash("+1 23", "IR") == "+123"
    assert canonical_phone_for_hash("call me", "IR") == "callme"


# --- properties -----------------------------------------------------------------

_SEPARATOR = st.sampled_from(["", "", "", " ", "-", ".", "/", "(", ")", "\u00a0"])
_PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")
_PHONEISH = st.text(alphabet="0123456789+ -./()۰۹٠٩x#\u00a0", max_size=24)
_REGIONS = st.lists(st.sampled_from(["IR", "US", "GB", "DE", "CA", "AE"]), unique=True, max_size=3)


def _decorate(draw: st.DrawFn, digits: str) -> str:
    """Write ``digits`` with random separators and, sometimes, Persian digits."""
    text = "".join(ch + draw(_SEPARATOR) for ch in digits).strip()
    if draw(st.booleans()):
        text = text.translate(_PERSIAN)
    return text


@st.composite
def iranian_mobile_shapes(draw: st.DrawFn) -> str:
    """Ten digits, written every way the fast path takes: Iranian mobiles (9…),
    landlines (1-8…) and numbers that are neither."""
    nsn = draw(st.from_regex(r"\A[1-9][0-9]{9}\Z"))
    prefix = draw(st.sampled_from(["", "0", "98", "+98", "0098", "+98 (0)"]))
    return prefix + _decorate(draw, nsn)


CONTACT_TYPES = {
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    phonenumbers.PhoneNumberType.VOIP,
    phonenumbers.PhoneNumberType.TOLL_FREE,
}


def _libphonenumber(text: str, fmt: str, regions: list[str]) -> tuple[str, tuple[str, ...]] | None:
    """What libphonenumber alone makes of a cell (no fast path, no pre-filter)."""
    cleaned, _ = _split(text)
    if not _digits_ok(cleaned) or len(cleaned) < 2:
        return None  # the importer's own rule: digits, separators and a leading + only
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    found: list[tuple[str, phonenumbers.PhoneNumber]] = []
    for region in [None] if cleaned.startswith("+") else regions:
        try:
            parsed = phonenumbers.parse(cleaned, region)
        except phonenumbers.NumberParseException:
            continue
        contact = region is None or phonenumbers.number_type(parsed) in CONTACT_TYPES
        if phonenumbers.is_valid_number(parsed) and contact:
            found.append((region or "", parsed))
    if not found:
        return None
    parsed = found[0][1]
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    fmt_e164 = phonenumbers.PhoneNumberFormat.E164
    others = [r for r, p in found[1:] if phonenumbers.format_number(p, fmt_e164) != e164]
    ambiguous = (found[0][0], *others) if others else ()
    first_code = phonenumbers.country_code_for_region(regions[0]) if regions else 0
    if fmt == "national" and parsed.country_code == first_code:
        national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        return "".join(ch for ch in national if ch.isdigit()), ambiguous
    return e164, ambiguous


REGION_LISTS = [["IR"], ["IR", "US"], ["IR", "GB"], ["IR", "US", "GB", "DE"], ["US", "IR"], []]


@given(
    iranian_mobile_shapes(), st.sampled_from(["national", "e164"]), st.sampled_from(REGION_LISTS)
)
def test_fast_path_agrees_with_libphonenumber(text: str, fmt: str, regions: list[str]) -> None:
    try:
        phone = make_phone_parser(fmt, regions)(text)
    except ConversionError:
        assert _libphonenumber(text, fmt, regions) is None
        return
    assert (phone.number, phone.ambiguous) == _libphonenumber(text, fmt, regions)


@given(_PHONEISH, st.sampled_from(["national", "e164"]), st.sampled_from(REGION_LISTS))
def test_any_cell_agrees_with_libphonenumber(text: str, fmt: str, regions: list[str]) -> None:
    try:
        phone = make_phone_parser(fmt, regions)(text)
    except ConversionError:
        assert _libphonenumber(text, fmt, regions) is None
        return
    assert (phone.number, phone.ambiguous) == _libphonenumber(text, fmt, regions)


@given(
    st.one_of(st.text(max_size=30), _PHONEISH),
    st.sampled_from(["keep", "national", "e164"]),
    _REGIONS,
)
def test_only_conversion_error(text: str, fmt: str, regions: list[str]) -> None:
    try:
        phone = parse_phone(text, fmt, regions)
    except ConversionError as exc:
        assert exc.reason
        assert exc.hint
        return
    assert phone.number.lstrip("+").isascii() and phone.number.lstrip("+").isdecimal()
    assert phone.extension == "" or phone.extension.isdecimal()


@given(st.one_of(_PHONEISH, iranian_mobile_shapes()), _REGIONS)
def test_e164_is_a_fixed_point(text: str, regions: list[str]) -> None:
    try:
        phone = parse_phone(text, "e164", regions)
    except ConversionError:
        return
    assert phone.number == phone.e164
    again = parse_phone(phone.e164, "e164", regions)
    assert (again.number, again.ambiguous) == (phone.e164, ())
    assert parse_phone(phone.e164, "e164", None).number == phone.e164


@given(st.one_of(_PHONEISH, iranian_mobile_shapes()), _REGIONS.filter(bool))
def test_national_is_the_first_regions_form_of_the_same_number(
    text: str, regions: list[str]
) -> None:
    try:
        national = parse_phone(text, "national", regions)
    except ConversionError:
        return
    e164 = parse_phone(text, "e164", regions)
    assert national.e164 == e164.number
    if national.number.startswith("+"):
        assert national.number == e164.number
    else:  # a number of the first region's country, read back there
        assert parse_phone(national.number, "e164", regions[:1]).number == e164.number
