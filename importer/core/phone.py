"""Phone number normalisation for a small, explicit table of regions.

This is deliberately not libphonenumber: it knows each supported country's calling
code, trunk prefix and the lengths of its national significant number (NSN), which
is enough to turn the ways people type numbers into spreadsheets into one form. It
runs once per phone cell, so everything it needs is precomputed at import time.

Forms produced:

* ``keep``: the text with separators removed (digits and a leading ``+`` kept).
* ``national``: trunk prefix + NSN in the number's own country, e.g. ``09121122333``.
* ``e164``: ``+`` + country code + NSN, e.g. ``+989121122333``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

from importer.errors import ConversionError

__all__ = [
    "PHONE_FORMATS",
    "REGIONS",
    "SUPPORTED_REGIONS",
    "PhoneFormat",
    "Region",
    "canonical_phone_for_hash",
    "normalize_phone",
]

PhoneFormat = Literal["keep", "national", "e164"]
PHONE_FORMATS: Final[tuple[str, ...]] = ("keep", "national", "e164")


@dataclass(frozen=True, slots=True)
class Region:
    """Numbering facts for one region (ISO 3166 alpha-2 ``code``)."""

    code: str
    country_code: str  # ITU calling code, digits only
    trunk_prefix: str  # dialled before the NSN inside the country; "" if none
    nsn_min: int  # shortest national significant number, in digits
    nsn_max: int  # longest national significant number, in digits
    example_national: str  # shown in hints
    example_international: str  # shown in hints

    @property
    def hint(self) -> str:
        """What to tell a user whose number does not fit this region."""
        return f"Use a number like {self.example_national} or {self.example_international}."


_REGION_LIST = (
    Region("IR", "98", "0", 10, 10, "0912 112 2333", "+98 912 112 2333"),
    Region("US", "1", "", 10, 10, "(201) 555-0123", "+1 201 555 0123"),
    Region("CA", "1", "", 10, 10, "(506) 555-0123", "+1 506 555 0123"),
    Region("GB", "44", "0", 9, 10, "07400 123456", "+44 7400 123456"),
    Region("DE", "49", "0", 6, 13, "030 123456", "+49 30 123456"),
    Region("FR", "33", "0", 9, 9, "06 12 34 56 78", "+33 6 12 34 56 78"),
    Region("AE", "971", "0", 8, 9, "050 123 4567", "+971 50 123 4567"),
    Region("TR", "90", "0", 10, 10, "0501 234 56 78", "+90 501 234 56 78"),
    Region("IQ", "964", "0", 8, 10, "0791 234 5678", "+964 791 234 5678"),
    Region("AF", "93", "0", 9, 9, "070 123 4567", "+93 70 123 4567"),
)

REGIONS: Final[Mapping[str, Region]] = MappingProxyType({r.code: r for r in _REGION_LIST})
"""Supported regions by upper-case ISO 3166 alpha-2 code."""

SUPPORTED_REGIONS: Final[tuple[str, ...]] = tuple(sorted(REGIONS))
"""Region codes the config layer may accept (upper case; matching is case-insensitive)."""

# Calling code -> region. US and CA share "1" and the same rules, so either will do.
_BY_COUNTRY_CODE: Final[dict[str, Region]] = {}
for _region in _REGION_LIST:
    _BY_COUNTRY_CODE.setdefault(_region.country_code, _region)
del _region

# Lower- and upper-case spellings so lookups never need str.upper() on the hot path.
_REGION_LOOKUP: Final[dict[str, Region]] = {
    **{code.lower(): r for code, r in REGIONS.items()},
    **REGIONS,
}

# One translate pass: Persian and Arabic-Indic digits become ASCII, separators vanish.
_SEPARATORS = " \t\u00a0\u2007\u2009\u202f-\u2010\u2011\u2012\u2013\u2212./()"
_CLEAN_TABLE: Final[dict[int, int | None]] = {
    **{ord(c): ord("0") + i for i, c in enumerate("۰۱۲۳۴۵۶۷۸۹")},
    **{ord(c): ord("0") + i for i, c in enumerate("٠١٢٣٤٥٦٧٨٩")},
    **{ord(c): None for c in _SEPARATORS},
}
# Most cells are plain ASCII; bytes.translate is several times faster than str.translate.
_ASCII_SEPARATORS: Final[bytes] = b" \t-./()"

_E164_MIN_DIGITS: Final = 8  # shortest plausible full international number
_E164_MAX_DIGITS: Final = 15  # ITU-T E.164 maximum, country code included

_REASON: Final = "not a phone number"
_GENERIC_HINT: Final = "Use a number with its country code, like +98 912 112 2333."


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


def _split_plus(cleaned: str, text: str, hint: str) -> tuple[bool, str]:
    """Return ``(has_plus, digits)`` or raise when anything but digits is left."""
    plus = cleaned.startswith("+")
    digits = cleaned[1:] if plus else cleaned
    # isdecimal alone would accept other scripts' digits; isascii rules those out.
    if not (digits.isascii() and digits.isdecimal()):
        raise ConversionError(_REASON, text, hint)
    return plus, digits


def _region_for(region: str | None) -> Region | None:
    if region is None:
        return None
    found = _REGION_LOOKUP.get(region) or REGIONS.get(region.upper())
    if found is None:
        # The config layer validates regions against SUPPORTED_REGIONS before any row
        # is read, so reaching this is a programming error, not bad cell data.
        raise ValueError(
            f"unknown phone region {region!r}; supported: {', '.join(SUPPORTED_REGIONS)}"
        )
    return found


def _from_nsn(info: Region, nsn: str, fmt: str) -> str:
    return info.trunk_prefix + nsn if fmt == "national" else "+" + info.country_code + nsn


def _international(digits: str, text: str, fmt: str, hint: str) -> str:
    """Normalise ``digits`` that follow a ``+`` or ``00`` (country code first)."""
    if not digits or digits[0] == "0":  # no calling code starts with 0
        raise ConversionError(_REASON, text, hint)
    info = (
        _BY_COUNTRY_CODE.get(digits[:1])
        or _BY_COUNTRY_CODE.get(digits[:2])
        or _BY_COUNTRY_CODE.get(digits[:3])
    )  # calling codes are prefix-free, so at most one of these matches
    if info is None:
        if fmt == "national":
            raise ConversionError(
                "unsupported phone country",
                text,
                f"{text} can't be written in national form for an unknown country; "
                "use phone_format: e164.",
            )
        if not _E164_MIN_DIGITS <= len(digits) <= _E164_MAX_DIGITS:
            raise ConversionError(_REASON, text, _GENERIC_HINT)
        return "+" + digits
    nsn = digits[len(info.country_code) :]
    # "+98 (0)912 ..." style: a trunk prefix written after the country code is common
    # in signatures and spreadsheets; it is dropped once, never twice.
    if info.trunk_prefix and nsn.startswith(info.trunk_prefix):
        nsn = nsn[len(info.trunk_prefix) :]
    if nsn[:1] == "0" or not info.nsn_min <= len(nsn) <= info.nsn_max:
        raise ConversionError(_REASON, text, info.hint)
    return _from_nsn(info, nsn, fmt)


def normalize_phone(text: str, fmt: str, region: str | None) -> str:
    """Normalise the phone number ``text`` to ``fmt`` ("keep", "national" or "e164").

    ``text`` should already be trimmed. Persian and Arabic-Indic digits are accepted;
    spaces, dashes, dots, slashes and parentheses are dropped. A leading ``+`` or
    ``00`` marks an international number whose country code follows; otherwise the
    number is read in ``region`` (ISO 3166 alpha-2, case-insensitive, one of
    :data:`SUPPORTED_REGIONS`). A bare number that starts with the region's country
    code is read as international only when its length fits country code + NSN,
    so ``9121122333`` in IR is national but ``989121122333`` is ``+98 ...``.

    * ``keep`` returns the cleaned text (digits and a leading ``+``) after checking
      that it has no letters and at least 5 digits; ``region`` is not used.
    * ``national`` returns trunk prefix + NSN in the number's own country.
    * ``e164`` returns ``+`` + country code + NSN; international numbers from
      countries outside :data:`REGIONS` are accepted with 8 to 15 digits.

    Raises :class:`ConversionError` for text that cannot be a phone number (reason
    "not a phone number"), for a ``national`` number from an unknown country and for
    a number without country code when ``region`` is None. Raises :class:`ValueError`
    for an unknown ``region`` or ``fmt``: the config layer validates both first, so
    that is a programming error rather than bad data.
    """
    if fmt != "national" and fmt != "e164" and fmt != "keep":
        raise ValueError(f"unknown phone format {fmt!r}; expected one of {PHONE_FORMATS}")
    info = _region_for(region)
    hint = info.hint if info is not None else _GENERIC_HINT
    cleaned = _clean(text)
    plus, digits = _split_plus(cleaned, text, hint)

    if fmt == "keep":
        if len(digits) < 5:
            raise ConversionError(_REASON, text, hint)
        return cleaned

    if plus:
        return _international(digits, text, fmt, hint)
    if digits.startswith("00"):
        return _international(digits[2:], text, fmt, hint)
    if info is None:
        raise ConversionError(
            "phone number without country code",
            text,
            "Write the number with its country code, like +98 912 112 2333, "
            "or set the phone region in the mapping.",
        )

    cc = info.country_code
    if (
        digits.startswith(cc)
        and info.nsn_min <= len(digits) - len(cc) <= info.nsn_max
        and digits[len(cc)] != "0"
    ):
        # Excel turns "+98 912..." into the number 98912...; the length check keeps a
        # national number that merely starts with the same digits (IR 10 digits vs 12).
        return _from_nsn(info, digits[len(cc) :], fmt)

    trunk = info.trunk_prefix
    # Without the trunk prefix is also accepted: spreadsheets drop leading zeros.
    nsn = digits[len(trunk) :] if trunk and digits.startswith(trunk) else digits
    if nsn[:1] == "0" or not info.nsn_min <= len(nsn) <= info.nsn_max:
        raise ConversionError(_REASON, text, hint)
    return _from_nsn(info, nsn, fmt)


def canonical_phone_for_hash(text: str, region: str | None) -> str:
    """Return the canonical form of a phone number to feed into a hash.

    The canonical form is E.164 (``+989121122333``) whenever :func:`normalize_phone`
    can produce it, so every way of writing the same number hashes identically. A
    number that cannot be normalised (no country code and no region, wrong length,
    letters) is hashed as its cleaned text instead, never dropped: Persian and
    Arabic-Indic digits become ASCII and separators are removed, but a leading ``+``
    and any letters stay, so distinct inputs do not collapse into one hash.
    ``region`` follows :func:`normalize_phone` (an unknown region is a ValueError).
    """
    try:
        return normalize_phone(text, "e164", region)
    except ConversionError:
        return _clean(text)
