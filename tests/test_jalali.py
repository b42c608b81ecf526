"""Tests for importer.core.jalali: known dates, invalid dates and calendar properties."""

from __future__ import annotations

import datetime
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from importer.core.jalali import (
    MAX_YEAR,
    MIN_YEAR,
    gregorian_to_jalali,
    is_leap_jalali,
    jalali_month_length,
    jalali_to_gregorian,
)
from importer.errors import ConversionError

# Each pair was checked against the Iranian rule (Nowruz is the day of the March
# equinox if it falls before noon Tehran time, else the next day) or a well-known date.
KNOWN = [
    ((1400, 1, 1), datetime.date(2021, 3, 21)),  # equinox 13:07 Tehran, after noon
    ((1403, 1, 1), datetime.date(2024, 3, 20)),  # equinox 06:36 Tehran, before noon
    ((1399, 12, 30), datetime.date(2021, 3, 20)),  # 1399 is leap
    ((1403, 12, 30), datetime.date(2025, 3, 20)),  # 1403 is leap
    ((1402, 12, 29), datetime.date(2024, 3, 19)),  # last day of common year 1402
    ((1404, 1, 1), datetime.date(2025, 3, 21)),  # equinox 12:31 Tehran, after noon
    ((1369, 10, 11), datetime.date(1991, 1, 1)),
    ((1357, 11, 22), datetime.date(1979, 2, 11)),  # 22 Bahman, revolution day
]

FIRST_DAY = datetime.date(622, 3, 22)  # 1/1/1
LAST_DAY = datetime.date(3799, 3, 19)  # last day of 3177

# Within the break period 1210..1634 the 33-year cycle is regular; these are its leap
# years modulo 33 (1399 % 33 == 13, 1403 % 33 == 17, 1408 % 33 == 22, ...).
MODERN_LEAP_RESIDUES = frozenset({1, 5, 9, 13, 17, 22, 26, 30})


@pytest.mark.parametrize(("jalali", "gregorian"), KNOWN)
def test_known_pairs(jalali: tuple[int, int, int], gregorian: datetime.date) -> None:
    assert jalali_to_gregorian(*jalali) == gregorian
    assert gregorian_to_jalali(gregorian) == jalali


@pytest.mark.parametrize(
    ("year", "leap"), [(1399, True), (1400, False), (1402, False), (1403, True), (1408, True)]
)
def test_known_leap_years(year: int, leap: bool) -> None:
    assert is_leap_jalali(year) is leap


def test_bounds() -> None:
    assert jalali_to_gregorian(MIN_YEAR, 1, 1) == FIRST_DAY
    assert jalali_to_gregorian(MAX_YEAR, 12, jalali_month_length(MAX_YEAR, 12)) == LAST_DAY
    assert gregorian_to_jalali(FIRST_DAY) == (1, 1, 1)


@pytest.mark.parametrize(
    "date",
    [
        (1402, 12, 30),  # 1402 is not leap
        (1402, 13, 1),
        (1402, 0, 1),
        (1402, 1, 0),
        (1402, 7, 31),
        (1402, 1, 32),
        (1402, 11, 31),
        (1403, 12, 31),
        (0, 1, 1),
        (MAX_YEAR + 1, 1, 1),
        (-5, 1, 1),
    ],
)
def test_invalid_dates(date: tuple[int, int, int]) -> None:
    with pytest.raises(ConversionError) as info:
        jalali_to_gregorian(*date)
    assert info.value.reason == "not a valid Solar Hijri date"
    assert info.value.hint


@pytest.mark.parametrize("year", [0, -1, MAX_YEAR + 1])
def test_year_out_of_range(year: int) -> None:
    with pytest.raises(ConversionError):
        is_leap_jalali(year)


@pytest.mark.parametrize(
    "date", [datetime.date(1, 1, 1), datetime.date(622, 3, 21), datetime.date(3799, 3, 20)]
)
def test_gregorian_out_of_range(date: datetime.date) -> None:
    with pytest.raises(ConversionError):
        gregorian_to_jalali(date)


def test_month_length() -> None:
    assert [jalali_month_length(1402, m) for m in range(1, 13)] == [31] * 6 + [30] * 5 + [29]
    assert jalali_month_length(1403, 12) == 30
    with pytest.raises(ConversionError):
        jalali_month_length(1403, 13)


@given(st.dates(min_value=FIRST_DAY, max_value=datetime.date(3000, 12, 31)))
def test_round_trip_gregorian(date: datetime.date) -> None:
    jy, jm, jd = gregorian_to_jalali(date)
    assert 1 <= jm <= 12
    assert 1 <= jd <= jalali_month_length(jy, jm)
    assert jalali_to_gregorian(jy, jm, jd) == date


@given(st.data())
def test_round_trip_jalali(data: st.DataObject) -> None:
    jy = data.draw(st.integers(MIN_YEAR, MAX_YEAR))
    jm = data.draw(st.integers(1, 12))
    jd = data.draw(st.integers(1, jalali_month_length(jy, jm)))
    assert gregorian_to_jalali(jalali_to_gregorian(jy, jm, jd)) == (jy, jm, jd)


@given(st.dates(min_value=FIRST_DAY, max_value=LAST_DAY - datetime.timedelta(days=1)))
def test_consecutive_days(date: datetime.date) -> None:
    y1, m1, d1 = gregorian_to_jalali(date)
    y2, m2, d2 = gregorian_to_jalali(date + datetime.timedelta(days=1))
    if (y2, m2) == (y1, m1):
        assert d2 == d1 + 1
    else:
        # A new month only starts after the last day of the previous one.
        assert d1 == jalali_month_length(y1, m1)
        assert d2 == 1
        assert (y2, m2) == ((y1, m1 + 1) if m1 < 12 else (y1 + 1, 1))


@given(st.integers(MIN_YEAR, MAX_YEAR - 1))
def test_leap_iff_esfand_has_30_days(year: int) -> None:
    next_nowruz = jalali_to_gregorian(year + 1, 1, 1)
    one_day = datetime.timedelta(days=1)
    if is_leap_jalali(year):
        assert jalali_to_gregorian(year, 12, 30) + one_day == next_nowruz
    else:
        assert jalali_to_gregorian(year, 12, 29) + one_day == next_nowruz
        with pytest.raises(ConversionError):
            jalali_to_gregorian(year, 12, 30)
    length = (next_nowruz - jalali_to_gregorian(year, 1, 1)).days
    assert length == (366 if is_leap_jalali(year) else 365)


@given(st.integers(1210, 1633))
def test_modern_33_year_cycle(year: int) -> None:
    assert is_leap_jalali(year) == (year % 33 in MODERN_LEAP_RESIDUES)


def test_leap_years_are_four_or_five_apart() -> None:
    leaps = [y for y in range(MIN_YEAR, MAX_YEAR + 1) if is_leap_jalali(y)]
    assert {b - a for a, b in itertools.pairwise(leaps)} == {4, 5}


@given(st.integers(), st.integers(), st.integers())
def test_arbitrary_ints_raise_only_conversion_error(jy: int, jm: int, jd: int) -> None:
    try:
        result = jalali_to_gregorian(jy, jm, jd)
    except ConversionError:
        return
    assert isinstance(result, datetime.date)
