"""Phone numbers: Google's libphonenumber (the ``phonenumbers`` package), with a fast path.

A number written with ``+`` or ``00`` carries its own country. A number without one is
read in the mapping's regions, in order: the first region where libphonenumber says the
number is **valid** wins; it is never forced into a region where it is not. A number
valid in several listed regions (``(212) 555-0143`` is a New York and a Tehran number)
is read in the first and reported as ambiguous. An extension (``x6413``, ``ext. 12``)
is split off, never a reason to fail.

Forms produced:

* ``keep``: the text with separators removed (digits and a leading ``+`` kept).
* ``national``: the national form, digits only (``09121122333``), for numbers of the
  first region's country; numbers of other countries are written in E.164.
* ``e164``: ``+`` + country code + national number, e.g. ``+989121122333``.

libphonenumber costs over 100 µs a number; the converter runs on every row of files
with millions of rows, so the common Iranian mobile shapes are recognised first with
the same numbering pattern libphonenumber uses (a property test keeps the two equal).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Final, Literal, NamedTuple

import phonenumbers

from importer.errors import ConversionError

__all__ = [
    "EXTENSION",
    "PHONE_FORMATS",
    "SUPPORTED_REGIONS",
    "Phone",
    "PhoneFormat",
    "canonical_phone_for_hash",
    "make_phone_parser",
    "normalize_phone",
    "parse_phone",
    "region_of",
]

PhoneFormat = Literal["keep", "national", "e164"]
PHONE_FORMATS: Final[tuple[str, ...]] = ("keep", "national", "e164")

SUPPORTED_REGIONS: Final[frozenset[str]] = frozenset(phonenumbers.SUPPORTED_REGIONS)
"""Region codes (ISO 3166 alpha-2, upper case) libphonenumber has numbering plans for."""


class Phone(NamedTuple):
    """A parsed phone cell (a tuple: built once per row, it must be cheap)."""

    number: str  # in the requested form
    e164: str  # the canonical form, for hashing ("" with `keep` when it has none)
    extension: str = ""  # digits after x / ext / #, split off
    # When valid in several listed regions: those regions, the one it was read in first.
    ambiguous: tuple[str, ...] = ()


# One translate pass: Persian and Arabic-Indic digits become ASCII, separators vanish.
_SEPARATORS = " \t\u00a0\u2007\u2009\u202f-\u2010\u2011\u2012\u2013\u2212./()"
_CLEAN_TABLE: Final[dict[int, int | None]] = {
    **{ord(c): ord("0") + i for i, c in enumerate("۰۱۲۳۴۵۶۷۸۹")},
    **{ord(c): ord("0") + i for i, c in enumerate("٠١٢٣٤٥٦٧٨٩")},
    **{ord(c): None for c in _SEPARATORS},
}
# Most cells are plain ASCII; bytes.translate is several times faster than str.translate.
_ASCII_SEPARATORS: Final[bytes] = b" \t-./()"
_ASCII_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")

# An extension at the end: "x6413", "ext. 12", "extension 7", "#12", ";ext=12", "داخلی ۱۲".
EXTENSION: Final = re.compile(
    r"\s*(?:;\s*ext=|,?\s*(?:extension|ext\.?|x|#|داخلی)\s*:?\s*)(\d{1,10})\s*$",
    re.IGNORECASE,
)

_REASON: Final = "not a phone number"
_GENERIC_HINT: Final = "Use a number with its country code, like +98 912 112 2333."


def _mobile_pattern(region: str, kind: str = "mobile") -> str:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    pattern = None if metadata is None else getattr(metadata, kind)
    if pattern is None or pattern.national_number_pattern is None:
        raise RuntimeError(f"libphonenumber has no {kind} numbering pattern for {region}")
    return str(pattern.national_number_pattern)


# Iranian mobile and landline numbers, as libphonenumber's own metadata describes them.
_IR_MOBILE: Final = re.compile(_mobile_pattern("IR"))
_IR_FIXED: Final = re.compile(_mobile_pattern("IR", "fixed_line"))


def _clean(text: str) -> str:
    """Convert digits to ASCII and drop separators; nothing is validated here."""
    if text.isascii():
        cleaned = text.encode("ascii").translate(None, _ASCII_SEPARATORS).decode("ascii")
    else:
        cleaned = text.translate(_CLEAN_TABLE)
    # A numeric Excel cell read as a float renders as "9121122333.0"; without this the
    # ".0" would lose its dot and become a trailing digit.
    if cleaned.endswith("0") and text.endswith(".0") and text[:-2].isdecimal():
        cleaned = cleaned[:-1]
    return cleaned


def _digits_ok(cleaned: str) -> bool:
    digits = cleaned[1:] if cleaned.startswith("+") else cleaned
    # isdecimal alone would accept other scripts' digits; isascii rules those out.
    return digits.isascii() and digits.isdecimal()


def _split(text: str) -> tuple[str, str]:
    """``(cleaned number, extension)``; the extension is "" when there is none."""
    cleaned = _clean(text)
    if _digits_ok(cleaned):
        return cleaned, ""
    found = EXTENSION.search(text.translate(_ASCII_DIGITS))
    if found is not None:
        main = _clean(text.translate(_ASCII_DIGITS)[: found.start()])
        if _digits_ok(main):
            return main, found.group(1)
    return cleaned, ""


@functools.lru_cache(maxsize=64)
def _hint(regions: tuple[str, ...]) -> str:
    if not regions:
        return _GENERIC_HINT
    example = phonenumbers.example_number_for_type(regions[0], phonenumbers.PhoneNumberType.MOBILE)
    if example is None:
        return _GENERIC_HINT
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    international = phonenumbers.format_number(
        example, phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    where = regions[0] if len(regions) == 1 else " or ".join(regions)
    return (
        f"Use a number valid in {where}, like {national}, "
        f"or one with its country code, like {international}."
    )


def _parse(number: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None


def _e164(parsed: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _national(parsed: phonenumbers.PhoneNumber) -> str:
    text = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return "".join(ch for ch in text if ch.isdigit())


def make_phone_parser(fmt: str, regions: Sequence[str] | str | None = ()) -> Callable[[str], Phone]:
    """A parser of phone cells (already trimmed, non-empty) into :class:`Phone`.

    ``regions`` are upper-case ISO 3166 codes from :data:`SUPPORTED_REGIONS`, tried in
    order for numbers without a country code. Raises :class:`ConversionError` for a
    cell that is no valid number; :class:`ValueError` for an unknown ``fmt`` or region
    (the config layer checks both first, so that is a programming error).
    """
    if fmt not in PHONE_FORMATS:
        raise ValueError(f"unknown phone format {fmt!r}; expected one of {PHONE_FORMATS}")
    regions = _regions(regions)
    for region in regions:
        if region not in SUPPORTED_REGIONS:
            raise ValueError(f"unknown phone region {region!r}")
    hint = _hint(regions)
    first_code = phonenumbers.country_code_for_region(regions[0]) if regions else 0
    # With IR first, an Iranian mobile is read as one whatever else is listed; the
    # other regions are only asked whether they could claim it too (an ambiguity).
    ir_first = regions[:1] == ("IR",)
    others = regions[1:] if ir_first else ()
    ir_national = fmt == "national" and ir_first

    def parse(text: str) -> Phone:
        cleaned, extension = _split(text)
        if not _digits_ok(cleaned) or len(cleaned) < 2:
            raise ConversionError(_REASON, text, hint)
        if fmt == "keep":
            if len(cleaned.lstrip("+")) < 5:
                raise ConversionError(_REASON, text, hint)
            return Phone(cleaned, "", extension)
        nsn = _iranian(cleaned, ir_first)
        if nsn:
            e164 = "+98" + nsn
            number = "0" + nsn if ir_national else e164
            if others and cleaned[0] != "+" and not cleaned.startswith("00"):
                also = tuple(r for r in others if _valid_in(cleaned, r) is not None)
                if also:
                    return Phone(number, e164, extension, ("IR", *also))
            return Phone(number, e164, extension)
        parsed, ambiguous = _read(text, cleaned, regions, hint)
        e164 = _e164(parsed)
        if fmt == "national" and parsed.country_code == first_code:
            return Phone(_national(parsed), e164, extension, ambiguous)
        return Phone(e164, e164, extension, ambiguous)

    return parse


def _iranian(cleaned: str, ir_first: bool) -> str:
    """The fast path: the 10-digit national number of an Iranian mobile or landline
    written +98…, 0098… or (when IR is the first region) 0…, bare, 98…; "" for anything
    else (which libphonenumber then reads)."""
    size = len(cleaned)
    nsn = ""
    if size == 13 and cleaned.startswith("+98"):
        nsn = cleaned[3:]
    elif size == 14 and cleaned.startswith("0098"):
        nsn = cleaned[4:]
    elif ir_first:
        if size == 11 and cleaned[0] == "0":
            nsn = cleaned[1:]
        elif size == 10:
            nsn = cleaned
        elif size == 12 and cleaned.startswith("98"):
            nsn = cleaned[2:]
    if not nsn:
        return ""
    first = nsn[0]
    if first == "9":
        return nsn if _IR_MOBILE.fullmatch(nsn) else ""
    # Landlines start 1-8 (94… and 96… are other services: left to libphonenumber).
    return nsn if "1" <= first <= "8" and _IR_FIXED.fullmatch(nsn) else ""


# What a customer's own number can be. Premium-rate, shared-cost, "personal" (GB 070)
# and similar numbers are valid too, but nobody gives one as their phone: counting
# them, every Iranian 0912… would also be a British premium-rate number and every
# (702) … a British personal number.
_CONTACT_TYPES: Final = frozenset(
    {
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
        phonenumbers.PhoneNumberType.VOIP,
        phonenumbers.PhoneNumberType.TOLL_FREE,
    }
)


def _valid_in(digits: str, region: str) -> phonenumbers.PhoneNumber | None:
    """The number read in ``region``, when libphonenumber says it is a valid number a
    customer can have there (see ``_CONTACT_TYPES``).

    A number of another region with the same calling code counts (a Jersey mobile
    written 07797 …, with GB listed): it is the same number in E.164. libphonenumber's
    parse costs ~30 µs, so numbers its patterns rule out are ruled out first.
    """
    if not _could_be_valid(digits, region):
        return None
    parsed = _parse(digits, region)
    if parsed is None:
        return None
    if phonenumbers.is_valid_number_for_region(parsed, region):  # cheap, the usual case
        return parsed if _type_in(parsed, region) in _CONTACT_TYPES else None
    shared = len(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(parsed.country_code or 0, ()))
    if shared < 2 or not phonenumbers.is_valid_number(parsed):
        return None
    return parsed if phonenumbers.number_type(parsed) in _CONTACT_TYPES else None


# number_type() first works out which of the regions sharing a calling code a number
# belongs to (25 for +1, ~100 µs); the region is known here, so ask its metadata
# directly, as number_type() itself does once it knows (the property tests compare).
_TYPE_OF = getattr(phonenumbers.phonenumberutil, "_number_type_helper", None)


def _type_in(parsed: phonenumbers.PhoneNumber, region: str) -> int:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if _TYPE_OF is None or metadata is None:
        return int(phonenumbers.number_type(parsed))
    return int(_TYPE_OF(phonenumbers.national_significant_number(parsed), metadata))


@functools.cache
def _region_patterns(
    region: str,
) -> tuple[re.Pattern[str], str, re.Pattern[str] | None, re.Pattern[str] | None] | None:
    """One pattern for the numbers a customer can have (``_CONTACT_TYPES``) in every
    region with this region's calling code, the calling code, and the region's national
    and international prefixes; None where national numbers are rewritten (no shortcut
    there)."""
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if meta is None or meta.country_code is None or meta.national_prefix_transform_rule:
        return None
    patterns: list[str] = []
    for sibling in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(meta.country_code, ()):
        other = phonenumbers.PhoneMetadata.metadata_for_region(sibling)
        if other is None:
            return None
        for desc in (other.mobile, other.fixed_line, other.voip, other.toll_free):
            if desc is not None and desc.national_number_pattern is not None:
                patterns.append(f"(?:{desc.national_number_pattern})")
    national = meta.national_prefix_for_parsing or meta.national_prefix
    international = meta.international_prefix
    if not patterns:
        return None
    return (
        re.compile("|".join(dict.fromkeys(patterns))),
        str(meta.country_code),
        re.compile(national) if national else None,
        re.compile(international) if international else None,
    )


def _could_be_valid(digits: str, region: str) -> bool:
    """False only when no national number libphonenumber could read from ``digits``
    (as written, without the calling code, without the national prefix, or without
    both) fits a pattern of a customer's number with that calling code. ``digits`` has
    no ``+``."""
    patterns = _region_patterns(region)
    if patterns is None:
        return True
    contact, code, national, international = patterns
    if international is not None and international.match(digits):
        return True  # read as an international number: let libphonenumber decide
    bases = [digits, digits[len(code) :]] if digits.startswith(code) else [digits]
    for base in bases:
        found = national.match(base) if national is not None else None
        for candidate in (base, base[found.end() :]) if found is not None else (base,):
            if contact.fullmatch(candidate):
                return True
    return False


def _read(
    text: str, cleaned: str, regions: tuple[str, ...], hint: str
) -> tuple[phonenumbers.PhoneNumber, tuple[str, ...]]:
    """libphonenumber's reading, and the listed regions it is ambiguous between."""
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    if cleaned.startswith("+"):
        parsed = _parse(cleaned, None)
        if parsed is None or not phonenumbers.is_valid_number(parsed):
            raise ConversionError(_REASON, text, hint)
        return parsed, ()
    if not regions:
        raise ConversionError(
            "phone number without country code",
            text,
            "Write the number with its country code, like +98 912 112 2333, "
            "or set the phone region in the mapping.",
        )
    found: list[tuple[str, phonenumbers.PhoneNumber]] = []
    for region in regions:
        parsed = _valid_in(cleaned, region)
        if parsed is not None:
            found.append((region, parsed))
    if not found:
        raise ConversionError(f"not a valid phone number in {' or '.join(regions)}", text, hint)
    first_region, first = found[0]
    # US and CA share +1: a number valid in both is one number, not an ambiguity.
    others = tuple(r for r, p in found[1:] if _e164(p) != _e164(first))
    return first, (first_region, *others) if others else ()


def parse_phone(text: str, fmt: str, regions: Sequence[str] | str | None) -> Phone:
    """Parse one phone cell (see :func:`make_phone_parser`)."""
    return _parser(fmt, _regions(regions))(text)


@functools.lru_cache(maxsize=64)
def _parser(fmt: str, regions: tuple[str, ...]) -> Callable[[str], Phone]:
    return make_phone_parser(fmt, regions)


def normalize_phone(text: str, fmt: str, regions: Sequence[str] | str | None) -> str:
    """The number in ``fmt`` form (the extension, if any, is left out)."""
    return parse_phone(text, fmt, regions).number


def _regions(regions: Sequence[str] | str | None) -> tuple[str, ...]:
    if regions is None:
        return ()
    if isinstance(regions, str):
        return (regions.upper(),)
    return tuple(r.upper() for r in regions)


def canonical_phone_for_hash(text: str, regions: Sequence[str] | str | None) -> str:
    """The canonical form of a phone number to feed into a hash.

    E.164 (``+989121122333``) whenever the number parses, so every way of writing the
    same number hashes identically. A number that does not parse is hashed as its
    cleaned text instead, never dropped: Persian and Arabic-Indic digits become ASCII
    and separators are removed, but a leading ``+`` and any letters stay, so distinct
    inputs do not collapse into one hash.
    """
    try:
        return parse_phone(text, "e164", regions).number
    except ConversionError:
        return _clean(text)


def region_of(e164: str) -> str | None:
    """The region (ISO code) of an E.164 number, or None."""
    parsed = _parse(e164, None)
    return None if parsed is None else phonenumbers.region_code_for_number(parsed)
