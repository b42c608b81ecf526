"""Converters: a cell's text becomes the typed value a Metrix user message needs.

Pure functions and small factories, no I/O. Every converter takes text that is already
cleaned and non-empty and either returns a value or raises ``ConversionError`` — never
anything else, so a bad cell can only ever fail its own row.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from importer.core.jalali import jalali_to_gregorian
from importer.errors import ConversionError

if TYPE_CHECKING:  # libphonenumber loads only when a mapping has a phone field
    from importer.core.phone import Phone

Converter = Callable[[str], Any]

# Persian (U+06F0..) and Arabic-Indic (U+0660..) digits are digits wherever numbers,
# dates and phones are parsed.
_DIGITS = str.maketrans("۰۱۲۳۴۵۶۷۸۹٠١٢٣٤٥٦٧٨٩", "01234567890123456789")
# Whitespace a spreadsheet cell can carry invisibly: NBSP, narrow/figure spaces,
# zero-width space/joiners, word joiner, BOM.
WHITESPACE = " \t\r\n\v\f\u00a0\u2007\u202f\u200b\u200c\u200d\u2060\ufeff"


def ascii_digits(text: str) -> str:
    """Replace Persian and Arabic-Indic digits with ASCII ones."""
    return text.translate(_DIGITS)


def clean(text: str) -> str:
    """Trim surrounding whitespace, including invisible spaces spreadsheets leave."""
    return text.strip(WHITESPACE)


# --- text transforms ---------------------------------------------------------------

TRANSFORMS: dict[str, Callable[[str], str]] = {
    "strip": clean,
    "lower": str.lower,
    "upper": str.upper,
    "title": str.title,
}


# --- numbers -----------------------------------------------------------------------

_INT_RE = re.compile(r"[+-]?\d+(?:\.0*)?")
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _number_text(text: str, thousands: str | None) -> str:
    text = ascii_digits(text).replace("\u066b", ".")  # Arabic decimal separator
    if thousands:
        text = text.replace(thousands, "")
    return text


def make_int(thousands: str | None = None) -> Converter:
    """Whole numbers; ``12.0`` is accepted, ``12.5`` and ``1,234`` (unless configured) are not."""
    hint = (
        "Use a whole number such as 42."
        if thousands
        else 'Use a whole number such as 42; for 1,234 add `thousands: ","` to the field.'
    )

    def to_int(text: str) -> int:
        number = _number_text(text, thousands)
        if not _INT_RE.fullmatch(number):
            raise ConversionError("not a whole number", text, hint)
        return int(number.split(".", 1)[0])

    return to_int


def make_float(thousands: str | None = None) -> Converter:
    """Decimal numbers; ``nan`` and ``inf`` are rejected (JSON cannot carry them)."""

    def rejected(text: str, number: str) -> ConversionError:
        if _FLOAT_RE.fullmatch(number):
            return ConversionError("number too large", text, "Use a finite number.")
        return ConversionError("not a number", text, "Use a number such as 12.5.")

    def to_float(text: str) -> float:
        # Plain ASCII goes straight to float(); only what float() would wrongly accept
        # (nan, inf, 1_000) or refuse needs the careful path.
        if (
            thousands is None
            and text.isascii()
            and "_" not in text
            and text[:1] > " "  # float() would also accept surrounding whitespace
            and text[-1:] > " "
        ):
            try:
                value = float(text)
            except ValueError:
                raise rejected(text, text) from None
            if math.isfinite(value):
                return value
            raise rejected(text, text)
        number = _number_text(text, thousands)
        if not _FLOAT_RE.fullmatch(number):
            raise ConversionError("not a number", text, "Use a number such as 12.5.")
        value = float(number)
        if math.isinf(value):
            raise ConversionError("number too large", text, "Use a finite number.")
        return value

    return to_float


# --- booleans ----------------------------------------------------------------------

TRUE_WORDS = ("true", "yes", "y", "1", "t", "on", "بله", "بلی", "درست")
FALSE_WORDS = ("false", "no", "n", "0", "f", "off", "خیر", "نه", "نادرست")


def make_bool(true_values: Iterable[str] = (), false_values: Iterable[str] = ()) -> Converter:
    """true/false, yes/no, y/n, 1/0, t/f, on/off (any case), بله/خیر, plus the mapping's own."""
    table: dict[str, bool] = {}
    for word in (*TRUE_WORDS, *true_values):
        table[ascii_digits(str(word)).casefold()] = True
    for word in (*FALSE_WORDS, *false_values):
        table[ascii_digits(str(word)).casefold()] = False
    allowed = ", ".join(sorted(table))

    def to_bool(text: str) -> bool:
        try:
            return table[ascii_digits(text).casefold()]
        except KeyError:
            raise ConversionError(
                "not a yes/no value",
                text,
                f"Use one of: {allowed}; or add it under `true_values:`/`false_values:`.",
            ) from None

    return to_bool


# --- JSON --------------------------------------------------------------------------


def to_json(text: str) -> Any:
    """A JSON object or array; scalars are rejected (give the column a scalar type instead)."""
    try:
        value = _JSON.decode(text)
    except (ValueError, RecursionError) as exc:
        raise ConversionError(
            "not valid JSON", text, f"Fix the JSON text ({_json_problem(exc)})."
        ) from None
    if not isinstance(value, dict | list):
        raise ConversionError(
            "JSON is not an object or array",
            text,
            "Use {...} or [...]; for a single value give the column another type.",
        )
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


# Built once: json.loads with keyword arguments builds a new decoder on every call.
_JSON = json.JSONDecoder(parse_constant=_reject_constant)


def _json_problem(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at character {exc.pos + 1}"
    return str(exc) or type(exc).__name__


# --- enumerations: gender and `values:` maps ----------------------------------------

GENDER_SYNONYMS: dict[str, str] = {
    **dict.fromkeys(("male", "m", "man", "مرد", "آقا", "اقا", "مذکر"), "Male"),
    **dict.fromkeys(("female", "f", "woman", "زن", "خانم", "مونث", "مؤنث"), "Female"),
    **dict.fromkeys(("other", "o"), "Other"),
}
GENDERS = ("Male", "Female", "Other")


def make_gender(values: Mapping[str, str] | None = None) -> Converter:
    """Built-in synonyms to Male/Female/Other; ``values:`` adds or overrides."""
    table = dict(GENDER_SYNONYMS)
    table.update({clean(str(k)).casefold(): v for k, v in (values or {}).items()})

    def to_gender(text: str) -> str:
        try:
            return table[text.casefold()]
        except KeyError:
            raise ConversionError(
                "unknown gender",
                text,
                "Use Male/Female/Other (or m/f, مرد/زن), or map it under `values:`.",
            ) from None

    return to_gender


def make_lookup(values: Mapping[str, Any], then: Converter) -> Converter:
    """A ``values:`` map tried first (case-insensitive); other text goes on to ``then``."""
    table = {clean(str(k)).casefold(): v for k, v in values.items()}

    def lookup(text: str) -> Any:
        key = text.casefold()
        if key in table:
            return table[key]
        return then(text)

    return lookup


# --- email -------------------------------------------------------------------------

_EMAIL_RE = re.compile(r"[^@\s<>(),;:\"\[\]]+@[^@\s<>(),;:\"\[\]]+\.[^@\s<>(),;:\"\[\].]{2,}")


def to_email(text: str) -> str:
    """Trimmed, lower-cased, and shaped like an address (local@domain.tld)."""
    email = text.lower()
    if not _EMAIL_RE.fullmatch(email):
        raise ConversionError("not an email address", text, "Use an address like name@example.com.")
    return email


def make_phone(
    fmt: str,
    regions: Sequence[str] | str | None = (),
    on_note: Callable[[str, Phone], None] | None = None,
) -> Converter:
    """Phone numbers in ``keep``, ``national`` or ``e164`` form (see importer.core.phone).

    ``on_note`` hears of every number that had an extension or was valid in several
    of ``regions``; the converter itself returns only the number.
    """
    from importer.core.phone import make_phone_parser

    parse = make_phone_parser(fmt, regions)

    def to_phone(text: str) -> str:
        phone = parse(text)
        if on_note is not None and (phone.extension or phone.ambiguous):
            on_note(text, phone)
        return phone.number

    return to_phone


# --- dates and times ---------------------------------------------------------------

EPOCH_DATE = date(1970, 1, 1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EXCEL_EPOCH = datetime(1899, 12, 30)

# Parsed moments are a `date` (a calendar date, no time) or a `datetime`
# (naive: read in the field's timezone; aware: as written).
Moment = date | datetime
Parser = Callable[[str], Moment]

_ISO_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}"
    r"(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:Z|z|[+-]\d{2}(?::?\d{2})?)?)?"
)


def parse_iso(text: str) -> Moment:
    """ISO 8601 dates and date-times (``T`` or a space; optional fraction and offset)."""
    text = ascii_digits(text)
    if not _ISO_RE.fullmatch(text):
        raise _not_a_date(text, None)
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        text = text.replace(",", ".").replace("z", "Z")
        if "." in text:  # fromisoformat takes at most 6 fractional digits
            head, _, frac = text.partition(".")
            digits = _leading_digits(frac)
            text = f"{head}.{digits[:6].ljust(6, '0')}{frac[len(digits) :]}"
        return datetime.fromisoformat(text)
    except ValueError:
        raise ConversionError(
            "not a real date", text, "Check the day and month: this date does not exist."
        ) from None


def _leading_digits(text: str) -> str:
    end = 0
    while end < len(text) and text[end].isdigit():
        end += 1
    return text[:end]


_DIRECTIVE_GROUPS = {
    "Y": r"(?P<Y>\d{4})",
    "y": r"(?P<y>\d{2})",
    "m": r"(?P<m>\d{1,2})",
    "d": r"(?P<d>\d{1,2})",
    "H": r"(?P<H>\d{1,2})",
    "M": r"(?P<M>\d{1,2})",
    "S": r"(?P<S>\d{1,2})",
    "f": r"(?P<f>\d{1,6})",
}
_TIME_DIRECTIVES = frozenset("HIMSfpzXcT")


def format_has_time(pattern: str) -> bool:
    """Whether a strptime pattern reads a time of day (else it reads a calendar date)."""
    return any(f"%{d}" in pattern for d in _TIME_DIRECTIVES)


def _compile_numeric(pattern: str) -> re.Pattern[str] | None:
    """A regex equivalent of a purely numeric strptime pattern, or None.

    strptime costs several microseconds a call; a regex does the same job for the
    patterns customer exports actually use (%Y %m %d %H %M %S %f %y and literals).
    """
    out: list[str] = []
    seen: set[str] = set()
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "%":
            if i + 1 >= len(pattern):
                return None
            directive = pattern[i + 1]
            if directive == "%":
                out.append("%")
            elif directive in _DIRECTIVE_GROUPS and directive not in seen:
                out.append(_DIRECTIVE_GROUPS[directive])
                seen.add(directive)
            else:
                return None
            i += 2
        else:
            out.append(r"\s+" if char == " " else re.escape(char))
            i += 1
    if not ({"Y", "y"} & seen and "m" in seen and "d" in seen):
        return None
    return re.compile("".join(out))


def _moment_from_groups(groups: dict[str, str], year: int, month: int, day: int) -> Moment:
    calendar_date = date(year, month, day)
    if "H" not in groups:
        return calendar_date
    fraction = groups.get("f") or "0"
    return datetime(
        year,
        month,
        day,
        int(groups["H"]),
        int(groups.get("M") or 0),
        int(groups.get("S") or 0),
        int(fraction.ljust(6, "0")),
    )


def make_strptime(pattern: str) -> Parser:
    """A parser for one strptime pattern (Gregorian)."""
    fast = _compile_numeric(pattern)
    has_time = format_has_time(pattern)

    def parse(text: str) -> Moment:
        text = ascii_digits(text)
        if fast is not None:
            match = fast.fullmatch(text)
            if match is None:
                raise _not_a_date(text, pattern)
            groups = match.groupdict()
            year = int(groups["Y"]) if "Y" in groups else 2000 + int(groups["y"])
            if "y" in groups and year > 2068:  # the same pivot strptime uses
                year -= 100
            try:
                return _moment_from_groups(groups, year, int(groups["m"]), int(groups["d"]))
            except ValueError:
                raise _not_real(text, pattern) from None
        try:
            parsed = datetime.strptime(text, pattern)
        except ValueError:
            raise _not_a_date(text, pattern) from None
        return parsed if has_time else parsed.date()

    return parse


def make_jalali(pattern: str) -> Parser:
    """A parser for Solar Hijri dates written with a numeric strptime pattern."""
    fast = _compile_numeric(pattern)
    if fast is None or "y" in fast.groupindex:
        raise ValueError(f"unsupported Solar Hijri pattern {pattern!r}")

    def parse(text: str) -> Moment:
        text = ascii_digits(text)
        match = fast.fullmatch(text)
        if match is None:
            raise _not_a_date(text, f"jalali:{pattern}")
        groups = match.groupdict()
        gregorian = jalali_to_gregorian(int(groups["Y"]), int(groups["m"]), int(groups["d"]))
        try:
            return _moment_from_groups(groups, gregorian.year, gregorian.month, gregorian.day)
        except ValueError:
            raise _not_real(text, f"jalali:{pattern}") from None

    return parse


def jalali_pattern_ok(pattern: str) -> bool:
    """Whether ``jalali:<pattern>`` can be parsed (numeric %Y, %m, %d, optional time)."""
    fast = _compile_numeric(pattern)
    return fast is not None and "Y" in fast.groupindex


def parse_epoch_seconds(text: str) -> Moment:
    """Unix time in seconds (fractions allowed), UTC."""
    return _from_epoch(text, 1.0, "epoch_s")


def parse_epoch_millis(text: str) -> Moment:
    """Unix time in milliseconds, UTC."""
    return _from_epoch(text, 1000.0, "epoch_ms")


def _from_epoch(text: str, per_second: float, name: str) -> Moment:
    number = ascii_digits(text)
    if not _FLOAT_RE.fullmatch(number):
        raise _not_a_date(text, name)
    try:
        return EPOCH + timedelta(seconds=float(number) / per_second)
    except OverflowError:
        raise _not_real(text, name) from None


def parse_excel_serial(text: str) -> Moment:
    """An Excel serial day number (1900 date system), e.g. 45000 or 45000.5."""
    number = ascii_digits(text)
    if not _FLOAT_RE.fullmatch(number):
        raise _not_a_date(text, "excel")
    serial = float(number)
    if not 1 <= serial < 2958466:  # Excel's own range: 1900-01-01 .. 9999-12-31
        raise _not_real(text, "excel")
    moment = _EXCEL_EPOCH + timedelta(days=serial)
    return moment.date() if serial.is_integer() else moment


NAMED_FORMATS: dict[str, Parser] = {
    "iso": parse_iso,
    "epoch_s": parse_epoch_seconds,
    "epoch_ms": parse_epoch_millis,
    "excel": parse_excel_serial,
}


def make_date_parser(formats: Iterable[str]) -> Parser:
    """Try each format in order; with none, only ISO 8601 is accepted (never a guess).

    ISO 8601 (YYYY-MM-DD...) is also accepted after the given Gregorian formats: it
    cannot be misread, and it is how Excel date cells arrive. Not with a Solar Hijri
    format, where 1402-01-05 must not be read as a Gregorian year.
    """
    names = list(formats) or ["iso"]
    parsers: list[Parser] = []
    for name in names:
        if name in NAMED_FORMATS:
            parsers.append(NAMED_FORMATS[name])
        elif name.startswith("jalali:"):
            parsers.append(make_jalali(name.removeprefix("jalali:")))
        else:
            parsers.append(make_strptime(name))
    if "iso" not in names and not any(n.startswith("jalali:") for n in names):
        parsers.append(parse_iso)
    if len(parsers) == 1:
        return parsers[0]
    shown = " or ".join(repr(n) for n in names)

    def parse_any(text: str) -> Moment:
        first: ConversionError | None = None
        for parser in parsers:
            try:
                return parser(text)
            except ConversionError as exc:
                if exc.reason == "not a real date":  # the shape matched: say that
                    raise
                first = first or exc
        assert first is not None
        if len(names) == 1:
            raise first
        raise ConversionError(first.reason, text, f"Expected {shown}.") from None

    return parse_any


_DMY_RE = re.compile(r"(\d{1,2})([/.\-])(\d{1,2})\2(\d{4})")
_YMD_RE = re.compile(r"(\d{4})([/.\-])(\d{1,2})\2(\d{1,2})")


def suggest_format(text: str) -> str:
    """A hint for a date that matched no format: which ``format:`` would read it."""
    text = ascii_digits(text)
    if match := _DMY_RE.match(text):
        sep = match.group(2)
        first, second = int(match.group(1)), int(match.group(3))
        day_first, month_first = f"%d{sep}%m{sep}%Y", f"%m{sep}%d{sep}%Y"
        if first > 12 >= second:
            return f'Add `format: "{day_first}"` to the field (day first).'
        if second > 12 >= first:
            return f'Add `format: "{month_first}"` to the field (month first).'
        return (
            f'Day and month cannot be told apart here: add `format: "{day_first}"` '
            f'(day first) or `format: "{month_first}"` (month first) to the field.'
        )
    if match := _YMD_RE.match(text):
        sep = match.group(2)
        if 1300 <= int(match.group(1)) < 1500:
            return f'This looks like a Solar Hijri date: add `format: "jalali:%Y{sep}%m{sep}%d"`.'
        return f'Add `format: "%Y{sep}%m{sep}%d"` to the field.'
    return "Use ISO 8601 (2024-11-20 or 2024-11-20T11:24:03Z) or add a `format:` to the field."


def _not_a_date(text: str, pattern: str | None) -> ConversionError:
    if pattern is None:
        return ConversionError("not an ISO 8601 date", text, suggest_format(text))
    return ConversionError(
        "does not match the date format",
        text,
        f"Expected the format {pattern!r}; fix the cell or change `format:`.",
    )


def _not_real(text: str, pattern: str) -> ConversionError:
    return ConversionError(
        "not a real date",
        text,
        f"The date has the format {pattern!r} but does not exist; check day and month.",
    )


def timezone_offset(minutes: int) -> tzinfo:
    """A fixed UTC offset."""
    return timezone(timedelta(minutes=minutes))


def get_timezone(name: str) -> tzinfo:
    """An IANA zone (``Asia/Tehran``) or ``UTC``; raises ValueError for unknown names."""
    if name.upper() in ("UTC", "Z", "GMT"):
        return UTC
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError) as exc:
        raise ValueError(name) from exc


def calendar_date(moment: Moment) -> date:
    """The calendar date of a moment, as written (a birthday has no time zone)."""
    return moment.date() if isinstance(moment, datetime) else moment


def instant(moment: Moment, zone: tzinfo) -> datetime:
    """The UTC instant of a moment; naive values are read in ``zone``."""
    if not isinstance(moment, datetime):
        moment = datetime(moment.year, moment.month, moment.day)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


def epoch_millis(moment: datetime) -> int:
    """Exact Unix milliseconds of an aware datetime (no float rounding)."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def date_epoch_millis(day: date) -> int:
    """Unix milliseconds of midnight UTC of a calendar date."""
    return (day - EPOCH_DATE).days * 86_400_000


def iso_utc(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.sssZ``, the only date form Metrix recognises."""
    m = moment
    return (
        f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:"
        f"{m.second:02d}.{m.microsecond // 1000:03d}Z"
    )


def iso_date(day: date) -> str:
    """A calendar date as Metrix's ISO form, at midnight UTC."""
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}T00:00:00.000Z"


DateKind = str  # "birthday" | "time" | "date" | "datetime"


def make_date_converter(kind: DateKind, formats: Iterable[str], zone: tzinfo) -> Converter:
    """Date text to what Metrix wants for ``kind``.

    birthday → epoch ms of the calendar date at midnight UTC; time → epoch ms of the
    instant; date → ISO text at midnight UTC; datetime → ISO text of the instant in UTC.
    """
    names = list(formats)
    parse = make_date_parser(names)
    general: Converter
    if kind == "birthday":
        general = lambda text: date_epoch_millis(calendar_date(parse(text)))  # noqa: E731
    elif kind == "date":
        general = lambda text: iso_date(calendar_date(parse(text)))  # noqa: E731
    elif kind == "time":
        general = lambda text: epoch_millis(instant(parse(text), zone))  # noqa: E731
    elif kind == "datetime":
        general = lambda text: iso_utc(instant(parse(text), zone))  # noqa: E731
    else:
        raise ValueError(f"unknown date kind {kind!r}")
    if len(names) == 1 and (fast := _fixed_width_converter(names[0], kind, zone, general)):
        return fast
    return general


# --- a fast path for the common fixed-width numeric patterns -----------------------
#
# Exports write "2024-11-20 14:54:03" millions of times; building datetime objects and
# converting zones for each costs several microseconds. For patterns made only of
# %Y %m %d %H %M %S and separators, a cell of the exact width is sliced instead, its
# day looked up in a small cache (validated once, with the zone's offset when it is
# constant all day), and the result computed with integer arithmetic. Anything else —
# other widths, DST-change days, impossible values — goes through the general path,
# which also produces every error message, so both paths always agree.

_FIELD_WIDTH = {"Y": 4, "m": 2, "d": 2, "H": 2, "M": 2, "S": 2}
_EPOCH_ORDINAL = EPOCH_DATE.toordinal()


def _fixed_width_layout(
    pattern: str,
) -> tuple[int, dict[str, tuple[int, int]], list[tuple[int, str]]] | None:
    fields: dict[str, tuple[int, int]] = {}
    literals: list[tuple[int, str]] = []
    position = i = 0
    while i < len(pattern):
        if pattern[i] == "%":
            directive = pattern[i + 1 : i + 2]
            if directive not in _FIELD_WIDTH or directive in fields:
                return None
            width = _FIELD_WIDTH[directive]
            fields[directive] = (position, position + width)
            position += width
            i += 2
        else:
            if pattern[i].isdigit():
                return None
            literals.append((position, pattern[i]))
            position += 1
            i += 1
    if not {"Y", "m", "d"} <= set(fields):
        return None
    if ("S" in fields and "M" not in fields) or ("M" in fields and "H" not in fields):
        return None
    return position, fields, literals


def _fixed_width_converter(
    pattern: str, kind: str, zone: tzinfo, general: Converter
) -> Converter | None:
    layout = _fixed_width_layout(pattern)
    if layout is None:
        return None
    _, fields, literals = layout
    order = sorted(fields, key=lambda d: fields[d][0])
    regex_text, last = "", 0
    for directive in order:
        start, end = fields[directive]
        regex_text += "".join(re.escape(c) for p, c in literals if last <= p < start)
        regex_text += f"([0-9]{{{end - start}}})"
        last = end
    regex_text += "".join(re.escape(c) for p, c in literals if p >= last)
    fullmatch = re.compile(regex_text).fullmatch
    y, m, d = order.index("Y"), order.index("m"), order.index("d")
    h = order.index("H") if "H" in fields else None
    mi = order.index("M") if "M" in fields else None
    sec = order.index("S") if "S" in fields else None
    days: dict[str, tuple[int, int | None]] = {}  # date digits -> (epoch day, zone offset s)
    day_texts: dict[int, str] = {}
    wants_instant = kind in ("time", "datetime")

    def day_of(groups: tuple[str, ...]) -> tuple[int, int | None]:
        key = groups[y] + groups[m] + groups[d]
        found = days.get(key)
        if found is None:
            calendar = date(int(groups[y]), int(groups[m]), int(groups[d]))  # may raise
            offset = _constant_offset(calendar, zone) if wants_instant else 0
            found = (calendar.toordinal() - _EPOCH_ORDINAL, offset)
            if len(days) < 100_000:
                days[key] = found
        return found

    if kind == "datetime" and h is not None and mi is not None and sec is not None:
        return _fast_datetime(fullmatch, (y, m, d, h, mi, sec), day_of, day_texts, general)

    def convert(text: str) -> Any:
        match = fullmatch(text)
        if match is None:
            return general(text)
        groups = match.groups()
        try:
            epoch_day, offset = day_of(groups)
        except ValueError:
            return general(text)
        if kind == "birthday":
            return epoch_day * 86_400_000
        if kind == "date":
            return _day_text(day_texts, epoch_day) + "T00:00:00.000Z"
        hour = int(groups[h]) if h is not None else 0
        minute = int(groups[mi]) if mi is not None else 0
        second = int(groups[sec]) if sec is not None else 0
        if hour > 23 or minute > 59 or second > 59 or offset is None:
            return general(text)  # impossible values, or a day the clock changes
        seconds = epoch_day * 86_400 + hour * 3600 + minute * 60 + second - offset
        if kind == "time":
            return seconds * 1000
        utc_day, rest = divmod(seconds, 86_400)
        hour, rest = divmod(rest, 3600)
        minute, second = divmod(rest, 60)
        return f"{_day_text(day_texts, utc_day)}T{hour:02d}:{minute:02d}:{second:02d}.000Z"

    return convert


# "THH:MM:" of each minute of a day, for the datetime fast path.
_CLOCK = [f"T{minute // 60:02d}:{minute % 60:02d}:" for minute in range(1440)]


def _fast_datetime(
    fullmatch: Callable[[str], re.Match[str] | None],
    where: tuple[int, int, int, int, int, int],
    day_of: Callable[[tuple[str, ...]], tuple[int, int | None]],
    day_texts: dict[int, str],
    general: Converter,
) -> Converter:
    """A date and time to the second, as ISO text in UTC: per day, the UTC dates of its
    minutes are known once (its offset is whole minutes in every zone in use today),
    so a cell costs a match, two small ints and a concatenation."""
    y, m, d, h, mi, sec = where
    # date digits -> (offset in minutes, the UTC texts of the day before, of, after)
    days: dict[str, tuple[int, str, str, str] | None] = {}

    def day(groups: tuple[str, ...]) -> tuple[int, str, str, str] | None:
        key = groups[y] + groups[m] + groups[d]
        found = days.get(key, False)
        if found is False:
            epoch_day, offset = day_of(groups)  # may raise ValueError
            found = None
            if offset is not None and offset % 60 == 0:
                texts = [_day_text(day_texts, epoch_day + shift) for shift in (-1, 0, 1)]
                found = (offset // 60, texts[0], texts[1], texts[2])
            if len(days) < 100_000:
                days[key] = found
        return found  # type: ignore[return-value]

    def convert(text: str) -> Any:
        match = fullmatch(text)
        if match is None:
            return general(text)
        groups = match.groups()
        try:
            found = day(groups)
        except ValueError:
            return general(text)
        hour, minute, second = int(groups[h]), int(groups[mi]), groups[sec]
        if found is None or hour > 23 or minute > 59 or second > "59":
            return general(text)  # impossible values, or a day the clock changes
        offset, before, same, after = found
        utc = hour * 60 + minute - offset
        if utc < 0:
            return before + _CLOCK[utc + 1440] + second + ".000Z"
        if utc >= 1440:
            return after + _CLOCK[utc - 1440] + second + ".000Z"
        return same + _CLOCK[utc] + second + ".000Z"

    return convert


def _day_text(cache: dict[int, str], epoch_day: int) -> str:
    text = cache.get(epoch_day)
    if text is None:
        day = date.fromordinal(epoch_day + _EPOCH_ORDINAL)
        text = f"{day.year:04d}-{day.month:02d}-{day.day:02d}"
        if len(cache) < 100_000:
            cache[epoch_day] = text
    return text


def _constant_offset(day: date, zone: tzinfo) -> int | None:
    """The zone's UTC offset in seconds when it is the same all day, else None."""
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = datetime(day.year, day.month, day.day, 23, 59, 59, tzinfo=zone)
    first, last = start.utcoffset(), end.utcoffset()
    if first is None or first != last:
        return None
    # A fold or gap inside the day would also show as different offsets at noon.
    noon = datetime(day.year, day.month, day.day, 12, tzinfo=zone).utcoffset()
    return int(first.total_seconds()) if noon == first else None


def cached(convert: Converter, size: int = 65_536, probe: int = 20_000) -> Converter:
    """Memoise a converter for columns that repeat values (gender, tiers, birthdays).

    The table stops growing at ``size`` entries, so memory is bounded. After ``probe``
    cells, a column that rarely repeats (amounts, timestamps) stops paying for the
    look-ups and calls the converter directly. Cached values are shared between rows,
    so nothing downstream may mutate a converted value.
    """
    table: dict[str, Any] = {}
    missing = object()
    seen = hits = 0
    direct = False

    def lookup(text: str) -> Any:
        nonlocal seen, hits, direct
        if direct:
            return convert(text)
        value = table.get(text, missing)
        if value is missing:
            value = convert(text)
            if len(table) < size:
                table[text] = value
        else:
            hits += 1
        seen += 1
        if seen == probe and hits < probe // 5:
            direct = True
            table.clear()
        return value

    return lookup


# --- the kind of a field -> its converter --------------------------------------------


class ConverterSpec(Protocol):
    """What a converter is built from (``importer.core.config.FieldSpec`` fits)."""

    @property
    def kind(self) -> str: ...
    @property
    def formats(self) -> tuple[str, ...]: ...
    @property
    def values(self) -> dict[str, Any]: ...
    @property
    def true_values(self) -> tuple[str, ...]: ...
    @property
    def false_values(self) -> tuple[str, ...]: ...
    @property
    def transform(self) -> tuple[str, ...]: ...
    @property
    def thousands(self) -> str | None: ...
    @property
    def phone_format(self) -> str: ...
    @property
    def region(self) -> tuple[str, ...]: ...


def identity(text: str) -> str:
    """Text kinds: the cell as written (already trimmed)."""
    return text


_DATE_KINDS = ("birthday", "time", "date", "datetime")
_FACTORIES: dict[str, Callable[[ConverterSpec, tzinfo], Converter]] = {
    "id": lambda spec, zone: identity,
    "text": lambda spec, zone: identity,
    "string": lambda spec, zone: identity,
    "email": lambda spec, zone: to_email,
    "gender": lambda spec, zone: make_gender(spec.values),
    **{
        kind: lambda spec, zone: make_date_converter(spec.kind, spec.formats, zone)
        for kind in _DATE_KINDS
    },
    "int": lambda spec, zone: make_int(spec.thousands),
    "float": lambda spec, zone: make_float(spec.thousands),
    "bool": lambda spec, zone: make_bool(spec.true_values, spec.false_values),
    "json": lambda spec, zone: to_json,
}
# Values repeat down most columns (gender, flags, tiers, birthdays, small numbers,
# preference blobs); `cached` stops trying where they do not. These kinds are unique
# per row or too cheap to look up (and phone numbers report notes on every call).
_UNCACHED = frozenset({"id", "text", "string", "email", "phone", "time", "datetime"})


def make_converter(
    spec: ConverterSpec, zone: tzinfo, on_phone: Callable[[str, Phone], None] | None = None
) -> Converter:
    """The converter of one field: its kind's converter, its ``values:`` map, a cache
    where values repeat, and its ``transform:`` steps first."""
    kind = spec.kind
    base: Converter
    if kind == "phone":
        base = make_phone(spec.phone_format, spec.region, on_phone)
    else:
        base = _FACTORIES[kind](spec, zone)
    if spec.values and kind != "gender":
        base = make_lookup(spec.values, base)
    if kind not in _UNCACHED:
        base = cached(base)
    for name in reversed(spec.transform):
        base = _then(TRANSFORMS[name], base)
    return base


def _then(first: Callable[[str], str], then: Converter) -> Converter:
    def apply(text: str) -> Any:
        text = first(text)
        if not text:
            raise ConversionError("is empty after the transform", text)
        return then(text)

    return apply
