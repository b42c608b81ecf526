"""Solar Hijri (Jalali / Persian) calendar conversions.

The arithmetic is the "breaks" algorithm used by jalaali-js (Borkowski's method as
published by Pournader and Toossi). It reproduces the official Iranian calendar,
which is defined astronomically, by listing the years where the usual 33-year leap
cycle is broken. It is exact for Jalali years 1..3177 and nothing else is claimed.

Gregorian dates are proleptic Gregorian, like :class:`datetime.date`.
"""

from __future__ import annotations

import datetime

from importer.errors import ConversionError

__all__ = [
    "MAX_YEAR",
    "MIN_YEAR",
    "gregorian_to_jalali",
    "is_leap_jalali",
    "jalali_month_length",
    "jalali_to_gregorian",
]

# Jalali years in which the 33-year leap cycle restarts; see jalaali-js.
_BREAKS = (
    -61, 9, 38, 199, 426, 686, 756, 818, 1111, 1181, 1210,
    1635, 2060, 2097, 2192, 2262, 2324, 2394, 2456, 3178,
)  # fmt: skip

MIN_YEAR = 1
MAX_YEAR = _BREAKS[-1] - 1  # 3177: the table says nothing about later years

_HINT = "Write the date as year/month/day in the Solar Hijri calendar, like 1402/12/29."


def _div(a: int, b: int) -> int:
    """Integer division truncating towards zero, as in the JavaScript original."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def _mod(a: int, b: int) -> int:
    """Remainder with the sign of ``a``, as in the JavaScript original."""
    return a - _div(a, b) * b


def _jal_cal(jy: int) -> tuple[int, int, int]:
    """Return ``(leap, gy, march)`` for Jalali year ``jy`` (assumed in range).

    ``leap`` is the number of years since the last leap year (0 means ``jy`` is a leap
    year), ``gy`` the Gregorian year in which ``jy`` begins and ``march`` the day of
    March on which 1 Farvardin falls.
    """
    gy = jy + 621
    leap_j = -14
    jp = _BREAKS[0]
    jump = 0
    # Count the Jalali leap days from the start of the table up to the period
    # (between two breaks) that contains jy.
    for jm in _BREAKS[1:]:
        jump = jm - jp
        if jy < jm:
            break
        leap_j += _div(jump, 33) * 8 + _div(_mod(jump, 33), 4)
        jp = jm
    n = jy - jp
    leap_j += _div(n, 33) * 8 + _div(_mod(n, 33) + 3, 4)
    if _mod(jump, 33) == 4 and jump - n == 4:
        leap_j += 1
    # Gregorian leap days up to gy, so the difference gives the March day.
    leap_g = _div(gy, 4) - _div((_div(gy, 100) + 1) * 3, 4) - 150
    march = 20 + leap_j - leap_g
    # Years since the last leap year; near the end of a period the cycle is shifted.
    if jump - n < 6:
        n = n - jump + _div(jump + 4, 33) * 33
    leap = _mod(_mod(n + 1, 33) - 1, 4)
    if leap == -1:
        leap = 4
    return leap, gy, march


def _check_year(jy: int, value: str) -> None:
    if not MIN_YEAR <= jy <= MAX_YEAR:
        raise ConversionError(
            "not a valid Solar Hijri date",
            value,
            f"The year must be between {MIN_YEAR} and {MAX_YEAR}. {_HINT}",
        )


def _farvardin_first(jy: int) -> int:
    """Proleptic Gregorian ordinal of 1 Farvardin of ``jy`` (assumed in range)."""
    _, gy, march = _jal_cal(jy)
    # ``march`` can in principle exceed 31 for far-off years; adding days avoids
    # building an invalid date in that case.
    return datetime.date(gy, 3, 1).toordinal() + march - 1


def is_leap_jalali(jy: int) -> bool:
    """Return whether Jalali year ``jy`` has 366 days (Esfand then has 30 days).

    Raises :class:`ConversionError` for years outside 1..3177.
    """
    _check_year(jy, str(jy))
    return _jal_cal(jy)[0] == 0


def _month_length(jy: int, jm: int) -> int:
    """Days in month ``jm`` of ``jy`` (both assumed valid)."""
    if jm <= 6:
        return 31
    if jm <= 11:
        return 30
    return 30 if _jal_cal(jy)[0] == 0 else 29


def _check_month(jy: int, jm: int, value: str) -> None:
    if not 1 <= jm <= 12:
        raise ConversionError(
            "not a valid Solar Hijri date", value, f"The month must be 1 to 12. {_HINT}"
        )


def jalali_month_length(jy: int, jm: int) -> int:
    """Return the number of days of month ``jm`` (1..12) in Jalali year ``jy``.

    Raises :class:`ConversionError` for a year outside 1..3177 or a month outside 1..12.
    """
    value = f"{jy}/{jm}"
    _check_year(jy, value)
    _check_month(jy, jm, value)
    return _month_length(jy, jm)


def jalali_to_gregorian(jy: int, jm: int, jd: int) -> datetime.date:
    """Convert the Solar Hijri date ``jy/jm/jd`` to a Gregorian :class:`datetime.date`.

    Months 1-6 have 31 days, months 7-11 have 30 and month 12 has 29 (30 in leap
    years). Raises :class:`ConversionError` for an impossible date or a year outside
    1..3177.
    """
    value = f"{jy}/{jm}/{jd}"
    _check_year(jy, value)
    _check_month(jy, jm, value)
    length = _month_length(jy, jm)
    if not 1 <= jd <= length:
        raise ConversionError(
            "not a valid Solar Hijri date",
            value,
            f"Month {jm} of {jy} has {length} days. {_HINT}",
        )
    # Months 1-6 have 31 days and 7-12 have 30, so day-of-year has a closed form.
    day_of_year = (jm - 1) * 31 - (jm - 7) * (jm // 7) + jd - 1
    return datetime.date.fromordinal(_farvardin_first(jy) + day_of_year)


# Bounds of what the algorithm covers, as proleptic Gregorian ordinals.
_MIN_ORDINAL = _farvardin_first(MIN_YEAR)
_MAX_ORDINAL = _farvardin_first(MAX_YEAR) + (366 if _jal_cal(MAX_YEAR)[0] == 0 else 365) - 1


def gregorian_to_jalali(d: datetime.date) -> tuple[int, int, int]:
    """Convert a Gregorian date to a Solar Hijri ``(year, month, day)`` tuple.

    Accepts a :class:`datetime.date` (a ``datetime`` is treated as its date). Raises
    :class:`ConversionError` for dates outside Jalali years 1..3177, i.e. before
    622-03-22 or after the end of Jalali year 3177 (in 3799).
    """
    ordinal = d.toordinal()
    if not _MIN_ORDINAL <= ordinal <= _MAX_ORDINAL:
        raise ConversionError(
            "date outside the Solar Hijri range",
            d.isoformat(),
            f"Only dates from {datetime.date.fromordinal(_MIN_ORDINAL).isoformat()} to "
            f"{datetime.date.fromordinal(_MAX_ORDINAL).isoformat()} can be converted.",
        )
    # The Jalali year starts in March, so it is gy - 621 from Nowruz on, gy - 622 before.
    jy = min(d.year - 621, MAX_YEAR)
    start = _farvardin_first(jy)
    if ordinal < start:
        jy -= 1
        start = _farvardin_first(jy)
    k = ordinal - start  # days since 1 Farvardin
    if k < 186:
        return jy, 1 + k // 31, 1 + k % 31
    k -= 186
    return jy, 7 + k // 30, 1 + k % 30
