"""Draft a mapping file from a header and a sample of rows (``metrix-import init-mapping``).

Pure: no files, no network. The caller reads the header and samples the rows; this
module decides which column is the customer id, which columns are standard Metrix
fields, which are ready-made hashes and what type every other column has, and writes
all of it as commented YAML.

Every guess is tested with the importer's own converters (``importer.core.convert``), so
a type or format written here is one that ``validate`` and ``run`` accept for every
sampled cell. Where the sample cannot decide, the line is marked ``CHECK`` and the
reason is repeated in ``Draft.notes``.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any

import yaml

from importer.core import convert as cv
from importer.core.config import SourceOptions
from importer.core.headers import fold
from importer.core.phone import EXTENSION as _EXTENSION
from importer.core.phone import normalize_phone, region_of

__all__ = ["Draft", "draft_mapping"]


@dataclass
class Draft:
    """A drafted mapping: the YAML text and what it decided, for the CLI and tests."""

    yaml: str  # the mapping file text, comments included
    user_id: str | None  # None only when no column can be named in a mapping at all
    fields: dict[str, str] = field(default_factory=dict)  # Metrix field -> column
    # custom attribute key -> (column, type, format or None)
    custom: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)
    hashed: dict[str, str] = field(default_factory=dict)  # hashed field -> column
    notes: list[str] = field(default_factory=list)  # "path: what to check"; CHECKs, left-outs


# --- names ------------------------------------------------------------------------

_DUPLICATE_SUFFIX = re.compile(r"#\d+$")


def _norm(name: str) -> str:
    """A header name for comparison: only letters and digits count (no spaces, ZWNJ, ...)."""
    text = fold(_DUPLICATE_SUFFIX.sub("", name))
    return "".join(ch for ch in text if ch.isalnum())


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[\W_]+")


def _tokens(name: str) -> frozenset[str]:
    """The words of a header ("customerID", "E-mail Address", "شماره‌موبایل")."""
    text = _CAMEL.sub(" ", _DUPLICATE_SUFFIX.sub("", name))
    return frozenset(t for t in _NON_WORD.split(fold(text)) if t)


def _names(*names: str) -> frozenset[str]:
    return frozenset(_norm(n) for n in names)


# Header names (as _norm folds them) of each standard Metrix field.
_FIELD_NAMES: dict[str, frozenset[str]] = {
    "firstName": _names(
        "first name", "firstname", "fname", "given name", "forename", "نام", "اسم", "نام کوچک"
    ),
    "lastName": _names(
        "last name", "surname", "family name", "lname", "family", "نام خانوادگی", "فامیلی",
        "نام فامیلی",
    ),
    "email": _names(
        "email", "e-mail", "mail", "email address", "e-mail address", "ایمیل",
        "پست الکترونیک", "پست الکترونیکی", "آدرس ایمیل", "رایانامه",
    ),
    "phoneNumber": _names(
        "mobile", "cell", "phone", "phone number", "tel", "telephone", "mobile number",
        "mobile phone", "cell phone", "cellphone", "phone no", "mobile no", "msisdn",
        "تلفن همراه", "موبایل", "شماره تماس", "شماره موبایل", "همراه", "شماره همراه",
        "تلفن", "شماره تلفن", "تلفن تماس",
    ),
    "gender": _names("gender", "sex", "جنسیت"),
    "birthday": _names(
        "birthday", "dob", "birth date", "date of birth", "birthdate", "تاریخ تولد", "تولد"
    ),
    "country": _names("country", "کشور"),
    "city": _names("city", "town", "شهر"),
    "region": _names("province", "state", "region", "استان"),
    "locality": _names(
        "district", "locality", "neighbourhood", "neighborhood", "محله", "منطقه"
    ),
}  # fmt: skip
_FIELD_BY_NAME = {name: f for f, names in _FIELD_NAMES.items() for name in names}
_FIELD_ORDER = tuple(_FIELD_NAMES)
_TEXT_FIELDS = frozenset({"firstName", "lastName", "country", "city", "region", "locality"})
# A header that merely mentions one of these words ("Work Phone", "Customer Email") is
# a weaker match, accepted only when the cells agree.
_PHONE_WORDS = frozenset(
    {"phone", "mobile", "tel", "telephone", "cell", "cellphone", "msisdn", "موبایل", "تلفن",
     "همراه"}
)  # fmt: skip
_FIELD_WORDS: dict[str, frozenset[str]] = {
    "phoneNumber": _PHONE_WORDS,
    "email": frozenset({"email", "mail", "ایمیل"}),
    "birthday": frozenset({"dob", "birthday", "birth", "birthdate", "تولد"}),
}
_HASH_EMAIL_WORDS = ("email", "mail", "ایمیل")
_HASH_PHONE_WORDS = ("phone", "mobile", "tel", "cell", "msisdn", "موبایل", "تلفن", "همراه")
_DATE_WORDS = frozenset(
    {"date", "dob", "birth", "birthday", "birthdate", "day", "joined", "created", "updated",
     "modified", "time", "timestamp", "تاریخ", "تولد", "زمان"}
)  # fmt: skip

_ID_NAMES = _names(
    "id", "customer id", "customerid", "cust id", "user id", "userid", "client id",
    "member id", "account id", "contact id", "external id", "uid", "customer code",
    "customer number", "customer no", "member number", "member no", "account number",
    "کد مشتری", "شناسه", "شناسه مشتری", "کد کاربری", "شناسه کاربر", "شناسه کاربری",
    "شماره مشتری", "کد عضویت", "شماره عضویت", "کد اشتراک", "کد",
)  # fmt: skip
_ID_WORDS = frozenset({"id", "uid", "code", "key", "کد", "شناسه"})
# Words that make a column a better id than a name or a date when nothing says "id".
_ID_WEAK_WORDS = frozenset(
    {"no", "number", "num", "شماره", "email", "mail", "mobile", "phone", "ایمیل", "موبایل"}
)


# Words of a record's own number ("Account #", "Client No"): an id, unlike a contact.
_ID_HOLDER_WORDS = frozenset(
    {"account", "acct", "customer", "client", "member", "record", "subscriber", "مشتری",
     "حساب", "اشتراک", "عضویت"}
)  # fmt: skip
_CONTACT_WORDS = frozenset(
    {"email", "mail", "mobile", "phone", "tel", "telephone", "cell", "ایمیل", "موبایل",
     "تلفن", "همراه"}
)  # fmt: skip


def _id_score(name: str, tokens: frozenset[str]) -> int:
    """3: an id name; 2: says id, or names whose record it numbers ("Account #");
    1: a number or a contact (phones and emails change: a weaker id); 0: anything else."""
    if _norm(name) in _ID_NAMES:
        return 3
    if tokens & _ID_WORDS or (tokens & _ID_HOLDER_WORDS and not tokens & _CONTACT_WORDS):
        return 2
    return 1 if tokens & _ID_WEAK_WORDS else 0


def _is_contact(col: _Col) -> bool:
    return bool(col.tokens & _CONTACT_WORDS) or _FIELD_BY_NAME.get(_norm(col.name)) in (
        "email",
        "phoneNumber",
    )


# Persian/Arabic letters to Latin, so a Persian header keeps a readable key.
_TRANSLIT = {
    "ا": "a", "آ": "a", "أ": "a", "إ": "e", "ٱ": "a", "ب": "b", "پ": "p", "ت": "t",
    "ث": "s", "ج": "j", "چ": "ch", "ح": "h", "خ": "kh", "د": "d", "ذ": "z", "ر": "r",
    "ز": "z", "ژ": "zh", "س": "s", "ش": "sh", "ص": "s", "ض": "z", "ط": "t", "ظ": "z",
    "ع": "a", "غ": "gh", "ف": "f", "ق": "gh", "ک": "k", "ك": "k", "گ": "g", "ل": "l",
    "م": "m", "ن": "n", "و": "v", "ؤ": "v", "ه": "h", "ة": "h", "ۀ": "h", "ی": "i",
    "ي": "i", "ى": "i", "ئ": "y", "ء": "", "ـ": "",
}  # fmt: skip
_KEY_MAX = 60  # Metrix allows 512 bytes; a key this long is already unreadable


def _key_base(name: str) -> str:
    """A header as snake_case ASCII ("" when nothing readable is left)."""
    text = _CAMEL.sub("_", cv.ascii_digits(unicodedata.normalize("NFKC", name)))
    out: list[str] = []
    for ch in text:
        if ch in _TRANSLIT:
            out.append(_TRANSLIT[ch])
        elif ch.isascii():
            out.append(ch.lower() if ch.isalnum() else "_")
        elif unicodedata.category(ch) == "Mn":  # Arabic short vowels, accents
            continue
        else:
            plain = "".join(
                c for c in unicodedata.normalize("NFKD", ch) if c.isascii() and c.isalnum()
            )
            out.append(plain.lower() or "_")
    key = re.sub("_+", "_", "".join(out)).strip("_")
    return key[:_KEY_MAX].rstrip("_")


def _custom_key(name: str, position: int, used: set[str]) -> str:
    key = _key_base(name) or f"column_{position}"
    if key[0].isdigit():
        key = f"c_{key}"
    unique, n = key, 1
    while unique in used:
        n += 1
        unique = f"{key}_{n}"
    used.add(unique)
    return unique


# --- YAML text --------------------------------------------------------------------

# Characters PyYAML's reader rejects (C1 controls, surrogates, U+FFFE/F) or reads as a
# line break (NEL, LS, PS); a stray BOM is escaped too. All are in the BMP.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")
_COMMENT_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


def _q(text: str) -> str:
    """A double-quoted YAML scalar: JSON text, with what YAML would misread escaped."""
    quoted = json.dumps(text, ensure_ascii=False)
    return _YAML_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def _shown(name: str, limit: int = 60) -> str:
    """A column name for a comment or note: quoted, escaped, shortened."""
    return _q(name if len(name) <= limit else name[: limit - 1] + "…")


def _yaml_key(key: str) -> str:
    # `yes`, `no`, `on`, `null` ... would load as booleans or None, not as the key.
    return key if yaml.safe_load(key) == key else _q(key)


def _flow(pairs: Sequence[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"


def _pct(share: float) -> str:
    # Floor, so "100%" always means every sampled cell.
    return f"{math.floor(share * 100 + 1e-9)}%"


# --- columns and their evidence ---------------------------------------------------


@dataclass
class _Col:
    index: int
    name: str
    tokens: frozenset[str]
    distinct: Counter[str]  # cleaned, non-empty cell text -> how often it occurs
    filled: int  # non-empty sampled cells
    unusable: str  # why a mapping cannot name this column ("" when it can)
    _shares: dict[str, float] = field(default_factory=dict)

    def share(self, name: str, test: Callable[[str], bool], minimum: float = 0.0) -> float:
        """The share of non-empty cells passing ``test``.

        Stops as soon as the share must be below ``minimum``; the value returned then
        is still below ``minimum`` (an upper bound), which is all callers need.
        """
        cache_key = f"{name}@{minimum}"
        if cache_key in self._shares:
            return self._shares[cache_key]
        if not self.filled:
            return 0.0
        budget = (1.0 - minimum) * self.filled + 1e-9
        bad = 0
        for text, count in self.distinct.items():
            if not test(text):
                bad += count
                if bad > budget:
                    break
        result = (self.filled - bad) / self.filled
        self._shares[cache_key] = result
        return result

    def failures(self, test: Callable[[str], bool], limit: int = 3) -> list[str]:
        """Up to ``limit`` distinct cells that fail ``test``, most frequent first."""
        out: list[str] = []
        for text, _count in self.distinct.most_common():
            if not test(text):
                out.append(text)
                if len(out) == limit:
                    break
        return out


def _passes(convert: Callable[[str], Any]) -> Callable[[str], bool]:
    def test(text: str) -> bool:
        try:
            convert(text)
        except Exception:  # any failure disqualifies: run would reject the cell
            return False
        return True

    return test


_is_int = _passes(cv.make_int())
_is_float = _passes(cv.make_float())
_is_bool = _passes(cv.make_bool())
_is_json = _passes(cv.to_json)
_is_email = _passes(cv.to_email)
_is_gender = _passes(cv.make_gender())
_HASH = re.compile(r"[0-9a-fA-F]{64}")
_LEADING_ZERO = re.compile(r"[+-]?0\d")


_PHONE_SHAPE = re.compile(r"\+?[0-9 ()./\-]{7,24}")


def _phone_shaped(text: str) -> bool:
    """Digits and separators only, 8 to 15 digits: worth asking libphonenumber about
    (which costs ~100 µs a cell; most cells of most columns are not phone numbers)."""
    text = cv.ascii_digits(text)
    if extension := _EXTENSION.search(text):  # "(702) 555-0101 x12": the number counts
        text = text[: extension.start()]
    return bool(_PHONE_SHAPE.fullmatch(text)) and 8 <= sum(ch.isdigit() for ch in text) <= 15


def _is_iranian(text: str) -> bool:
    """09…, 9xxxxxxxxx, +98…, 0098…, 98… (an IR mobile, or any number with +98)."""
    if not _phone_shaped(text):
        return False
    try:
        e164 = normalize_phone(text, "e164", "IR")
    except Exception:
        return False
    if e164.startswith("+989"):
        return True
    digits = cv.ascii_digits(text).lstrip(" +(")
    return e164.startswith("+98") and digits.startswith(("98", "0098"))


def _is_international(text: str) -> bool:
    if not cv.ascii_digits(text).startswith(("+", "00")) or not _phone_shaped(text):
        return False
    try:
        normalize_phone(text, "e164", None)
    except Exception:
        return False
    return True


def _examples(values: Iterable[str]) -> str:
    return ", ".join(_shown(v, 30) for v in values)


# --- dates ------------------------------------------------------------------------

_SHAPE = re.compile(r"(\d{1,4})([/.\-])(\d{1,2})\2(\d{1,4})(?:\s+(\d{1,2}):(\d{1,2})(:\d{1,2})?)?")
_COMPACT = re.compile(r"(1[3-4]|19|20)\d{6}")
_JALALI_YEAR_FIRST = re.compile(r"1[34]\d\d[/.\-]")


@dataclass(frozen=True)
class _DateGuess:
    formats: tuple[str, ...]  # () means ISO 8601, which needs no `format:`
    kind: str  # date | datetime
    share: float
    ambiguous: bool  # day/month order assumed, not seen


def _date_candidates(col: _Col, compact: bool) -> list[tuple[tuple[str, ...], bool]]:
    """Formats worth trying for a column, most specific first, with an ambiguity flag."""
    shapes: Counter[tuple[str, str, bool, str]] = Counter()
    firsts: dict[tuple[str, str, bool, str], int] = {}
    seconds: dict[tuple[str, str, bool, str], int] = {}
    jalali_seen = False
    for text, count in col.distinct.items():
        digits = text if text.isascii() else cv.ascii_digits(text)
        match = _SHAPE.fullmatch(digits)
        if match is not None:
            one, sep, two, three, hour, seconds_part = match.group(1, 2, 3, 4, 5, 7)
            time = "" if hour is None else " %H:%M" if seconds_part is None else " %H:%M:%S"
            if len(one) == 4 and len(three) <= 2:
                order, year = "ymd", int(one)
            elif len(three) == 4 and len(one) <= 2:
                order, year = "xy", int(three)
            else:
                continue
        elif compact and _COMPACT.fullmatch(digits):
            order, sep, time, year = "compact", "", "", int(digits[:4])
        else:
            jalali_seen = jalali_seen or bool(_JALALI_YEAR_FIRST.match(digits))
            continue
        jalali = 1300 <= year < 1500
        jalali_seen = jalali_seen or jalali
        key = (order, sep, jalali, time)
        shapes[key] += count
        if order == "xy":
            firsts[key] = max(firsts.get(key, 0), int(one))
            seconds[key] = max(seconds.get(key, 0), int(two))
    # A Solar Hijri year must never be read as a Gregorian one (1370 AD): once one is
    # seen, only Solar Hijri formats are tried.
    out: list[tuple[tuple[str, ...], bool]] = [] if jalali_seen else [((), False)]
    for key, _count in shapes.most_common(3):
        order, sep, jalali, time = key
        if jalali_seen and not jalali:
            continue
        prefix = "jalali:" if jalali else ""
        if order == "ymd":
            out.append(((f"{prefix}%Y{sep}%m{sep}%d{time}",), False))
        elif order == "compact":
            out.append(((f"{prefix}%Y%m%d",), False))
        else:
            day_first = (f"{prefix}%d{sep}%m{sep}%Y{time}",)
            month_first = (f"{prefix}%m{sep}%d{sep}%Y{time}",)
            by_day, by_month = firsts[key] > 12, seconds[key] > 12
            if by_day and not by_month:
                out.append((day_first, False))
            elif by_month and not by_day:
                out.append((month_first, False))
            elif not by_day:
                # Nothing above 12 in either place: assume day first (most exports
                # are Iranian or European) and say so.
                out.append((day_first, True))
            else:
                out += [(day_first, False), (month_first, False)]
    return out


def _guess_date(col: _Col, *, compact: bool, minimum: float, birthday: bool) -> _DateGuess | None:
    """The format that reads the most sampled cells (at least ``minimum`` of them)."""
    if not col.filled:
        return None
    best: _DateGuess | None = None
    # Only a written time of day has a ':' (an offset comes after a time), so this is
    # what the parsers would say, without parsing every cell twice.
    kind = "datetime" if any(":" in text for text in col.distinct) else "date"
    for formats, ambiguous in _date_candidates(col, compact):
        # The converter `run` uses, so a format is only offered if `run` reads the cells.
        check = _passes(cv.make_date_converter("birthday" if birthday else kind, formats, UTC))
        share = col.share(f"date:{formats}:{kind}:{birthday}", check, minimum)
        if share >= minimum and (best is None or share > best.share):
            best = _DateGuess(formats, kind, share, ambiguous)
            if share == 1.0:
                break
    return best


def _format_text(guess: _DateGuess) -> str:
    return f"format {_q(guess.formats[0])}" if guess.formats else "ISO 8601"


def _ambiguity_note(guess: _DateGuess) -> str:
    day_first = guess.formats[0]
    month_first = day_first.replace("%d", "%D").replace("%m", "%d").replace("%D", "%m")
    return (
        f"no sampled day or month is above 12, so day and month cannot be told apart; "
        f"assumed day first ({_q(day_first)}); if the file is month first use "
        f"{_q(month_first)} (validate reports rows that contradict the format)"
    )


# --- standard fields --------------------------------------------------------------


@dataclass
class _Match:
    field: str
    col: _Col
    strength: int  # 2: the header is a name of the field; 1: mentions it; 0: cells only
    share: float | None  # None: no sampled values
    spec: list[tuple[str, str]]
    evidence: str
    checks: list[str]
    test: Callable[[str], bool]  # whether a cell fits the field as specified

    @property
    def rank(self) -> tuple[int, float]:
        return (self.strength, -1.0 if self.share is None else self.share)


_ACCEPT = 0.9  # the share of sampled cells a field's converter must accept
_OPTIONAL_CONTACTS = frozenset({"email", "phoneNumber"})


def _phone_spec(col: _Col) -> tuple[list[tuple[str, str]], str, Callable[[str], bool]]:
    """The phone settings the cells call for, a description, and their test."""
    regions: list[str] = []
    if col.share("iranian", _is_iranian, _ACCEPT) >= _ACCEPT:
        spec, what = [("phone_format", "national"), ("region", "IR")], "Iranian numbers"
        fmt, regions = "national", ["IR"]
    elif col.share("international", _is_international, _ACCEPT) >= _ACCEPT:
        regions = [_common_region(col)]
        # `e164` needs a region; it only applies to numbers written without +code.
        spec = [("phone_format", "e164"), ("region", regions[0])]
        what, fmt = "numbers with +country code", "e164"
    elif mixed := _mixed_regions(col):
        regions = mixed
        # National forms only for the first country's numbers: E.164 for a mixed file.
        fmt = "national" if regions == ["IR"] else "e164"
        listed = regions[0] if len(regions) == 1 else "[" + ", ".join(regions) + "]"
        spec, what = [("phone_format", fmt), ("region", listed)], f"numbers of {listed}"
    else:
        spec, what, fmt = [("phone_format", "keep")], "kept as written", "keep"
    test = _passes(lambda text: normalize_phone(text, fmt, regions))
    return spec, what, test


# Countries tried, in this order, for numbers written without their +code.
_DRAFT_REGIONS = ("IR", "US", "GB", "CA", "DE", "FR", "TR", "AE", "IQ", "AF")


def _reads_in(text: str, region: str) -> bool:
    try:
        normalize_phone(text, "e164", region)
    except Exception:
        return False
    return True


def _mixed_regions(col: _Col) -> list[str]:
    """The regions that read at least 90% of the cells (numbers with +code need none),
    most used first; [] when no such list exists."""
    votes: Counter[str] = Counter()
    covered = 0
    for text, count in col.distinct.items():
        if not _phone_shaped(text):
            continue
        if _is_international(text):
            covered += count
            continue
        for region in _DRAFT_REGIONS:
            if _reads_in(text, region):
                votes[region] += count
                covered += count
                break
    if not votes or covered < _ACCEPT * col.filled:
        return []
    return [region for region, _ in votes.most_common()]


def _common_region(col: _Col) -> str:
    votes: Counter[str] = Counter()
    for text, count in col.distinct.items():
        try:
            e164 = normalize_phone(text, "e164", None)
        except Exception:
            continue
        if region := region_of(e164):
            votes[region] += count
    return votes.most_common(1)[0][0] if votes else "IR"


def _evaluate(field_name: str, col: _Col, strength: int) -> _Match:
    """How well a column's cells fit a standard field, and the spec to write."""
    spec: list[tuple[str, str]] = [("column", _q(col.name))]
    checks: list[str] = []
    detail = ""
    test: Callable[[str], bool]
    if field_name in _TEXT_FIELDS:
        # Any text is accepted; a column of numbers is a code, not a name.
        test, what = _is_text, "text, not numbers"
    elif field_name == "email":
        test, what = _is_email, "email addresses"
    elif field_name == "gender":
        test, what = _is_gender, "genders"
        detail = "male/female, m/f, مرد/زن ..."
    elif field_name == "phoneNumber":
        extra, detail, test = _phone_spec(col)
        spec += extra
        what = "phone numbers"
        if not col.filled:
            checks.append("no sampled values: phone_format keep accepts any number as written")
    else:  # birthday
        guess = _guess_date(col, compact=True, minimum=0.0, birthday=True)
        what = "dates"
        if guess is not None and guess.share > 0:
            if guess.formats:
                spec.append(("format", _q(guess.formats[0])))
            detail = _format_text(guess)
            if guess.ambiguous:
                checks.append(_ambiguity_note(guess))
            test = _passes(cv.make_date_converter("birthday", guess.formats, UTC))
        else:
            test = _never
        if not col.filled:
            checks.append("no sampled values: only ISO 8601 dates are read without `format:`")
    if field_name in _OPTIONAL_CONTACTS:
        # A mistyped phone or email is no reason to lose the rest of the profile: the
        # row goes without it, and the warnings file lists it.
        spec.append(("on_invalid", "drop_field"))
    share = col.share(f"field:{field_name}", test) if col.filled else None
    if share is not None and _ACCEPT <= share < 1.0 and field_name not in _TEXT_FIELDS:
        # Text fields take any cell; for the others a cell that does not fit fails its row.
        bad = col.failures(test)
        outcome = (
            "those rows are sent without it (on_invalid: drop_field)"
            if field_name in _OPTIONAL_CONTACTS
            else "those rows would be rejected"
        )
        checks.append(
            f"{col.filled - round(share * col.filled)} of {col.filled} sampled cells "
            f"are not {what} (e.g. {_examples(bad)}); {outcome}"
        )
    if share is None:
        evidence = "no values in the sample to confirm it"
    else:
        evidence = f"{_pct(share)} of sampled cells are {what}"
        if detail and share >= _ACCEPT:
            evidence += f" ({detail})"
    return _Match(field_name, col, strength, share, spec, evidence, checks, test)


def _is_text(text: str) -> bool:
    return not _is_float(text)


def _never(_text: str) -> bool:
    return False


def _candidate(col: _Col) -> _Match | None:
    """The standard field a column most likely holds, by name first, then by content."""
    named = _FIELD_BY_NAME.get(_norm(col.name))
    if named is not None:
        return _evaluate(named, col, 2)
    best: _Match | None = None
    for field_name, words in _FIELD_WORDS.items():
        if col.tokens & words and col.filled:
            match = _evaluate(field_name, col, 1)
            fits = match.share is not None and match.share >= _ACCEPT
            if fits and (best is None or match.rank > best.rank):
                best = match
    if best is not None or not col.filled:
        return best
    if col.share("iranian", _is_iranian, _ACCEPT) >= _ACCEPT:
        return _evaluate("phoneNumber", col, 0)
    if col.share("email", _is_email, _ACCEPT) >= _ACCEPT:
        return _evaluate("email", col, 0)
    return None


def _reason(match: _Match) -> str:
    """Why a column was considered for a field."""
    name = _shown(match.col.name)
    if match.strength == 2:
        verb = "matches" if _norm(match.col.name) == _norm(match.field) else "is a synonym of"
        return f"header {name} {verb} {match.field}"
    if match.strength == 1:
        return f"header {name} mentions {match.field}"
    return f"no header names {match.field}, but the cells of {name} fit it"


def _why(match: _Match) -> str:
    return f"{_reason(match)}; {match.evidence}"


def _phone_like(col: _Col) -> str:
    """Why a column holds phone numbers ("" when it does not look like it)."""
    if col.filled > 0 and col.share("iranian", _is_iranian, _ACCEPT) >= _ACCEPT:
        return "phone numbers"
    if _FIELD_BY_NAME.get(_norm(col.name)) == "phoneNumber" or col.tokens & _PHONE_WORDS:
        return "the header says phone"
    return ""


# --- custom attributes ------------------------------------------------------------


@dataclass(frozen=True)
class _Custom:
    kind: str
    format: str | None
    comment: str
    check: str | None = None
    thousands: str | None = None


# Thousands separators exports use, and the decimal mark that goes with each: "1,234.56",
# "1'234.56" (Swiss), "۱٬۲۳۴٫۵" (Persian); "1.234.567" only as whole numbers, since
# "1.234" alone could be a decimal.
_GROUPED = {
    sep: re.compile(rf"[+-]?\d{{1,3}}(?:{re.escape(sep)}\d{{3}})+(?:[.\u066b]\d+)?")
    for sep in (",", "'", "\u066c")
}
_GROUPED["."] = re.compile(r"[+-]?\d{1,3}(?:\.\d{3})+")


def _thousands(col: _Col) -> tuple[str, str] | None:
    """``(separator, int | float)`` when every sampled cell is a number, some written
    with that thousands separator (``1,234.56``); None otherwise."""
    for sep, grouped in _GROUPED.items():
        if not any(sep in text for text in col.distinct):
            continue
        if sep == "." and not any(text.count(".") > 1 for text in col.distinct):
            continue  # "1.234" could be one and a quarter
        plain = re.compile(r"[+-]?\d+(?:[.\u066b]\d+)?" if sep != "." else r"[+-]?\d+")

        def fits(
            text: str, grouped: re.Pattern[str] = grouped, plain: re.Pattern[str] = plain
        ) -> bool:
            digits = cv.ascii_digits(text)
            return bool(grouped.fullmatch(digits) or plain.fullmatch(digits))

        if col.share(f"grouped:{sep}", fits, 1.0) == 1.0:
            whole = _passes(cv.make_int(sep))
            return sep, "int" if col.share(f"int:{sep}", whole, 1.0) == 1.0 else "float"
    return None


def _infer_custom(col: _Col) -> _Custom:
    """The strictest custom type every non-empty sampled cell converts to."""
    if not col.filled:
        return _Custom("string", None, "no values in the sample, so kept as text")
    if phone := _phone_like(col):
        return _Custom("string", None, f"{phone}, kept as text")
    date_named = bool(col.tokens & _DATE_WORDS)
    if date_named and (guess := _guess_date(col, compact=True, minimum=1.0, birthday=False)):
        return _date_custom(guess)
    if col.share("bool", _is_bool, 1.0) == 1.0:
        words = ", ".join(_shown(v, 20) for v in sorted(col.distinct)[:4])
        return _Custom("bool", None, f"every sampled value is a yes/no word ({words})")
    numeric = col.share("float", _is_float, 1.0) == 1.0
    # 0012 as an int would lose its zeros (national ids, postal codes): keep the text.
    zeros = numeric and any(_LEADING_ZERO.match(cv.ascii_digits(v)) for v in col.distinct)
    if zeros:
        return _Custom("string", None, "numbers with leading zeros, kept as text to keep them")
    if numeric and col.share("int", _is_int, 1.0) == 1.0:
        return _Custom("int", None, "every sampled value is a whole number")
    if numeric:
        return _Custom("float", None, "every sampled value is a number")
    if grouped := _thousands(col):
        sep, kind = grouped
        return _Custom(
            kind, None, f"every sampled value is a number, written with {_q(sep)} between "
            "thousands", thousands=sep,
        )  # fmt: skip
    if not date_named and (guess := _guess_date(col, compact=False, minimum=1.0, birthday=False)):
        return _date_custom(guess)
    if col.share("json", _is_json, 1.0) == 1.0:
        return _Custom("json", None, "every sampled value is a JSON object or array")
    if all(_HASH.fullmatch(v) for v in col.distinct):
        return _Custom(
            "string",
            None,
            "64-hex-digit hashes, but the header does not say of what; if they are "
            "SHA-256 of emails or phone numbers, move the column under hashed:",
        )
    return _Custom("string", None, _near_miss(col))


def _date_custom(guess: _DateGuess) -> _Custom:
    fmt = guess.formats[0] if guess.formats else None
    comment = f"every sampled value is a {guess.kind} ({_format_text(guess)})"
    return _Custom(guess.kind, fmt, comment, _ambiguity_note(guess) if guess.ambiguous else None)


def _near_miss(col: _Col) -> str:
    """Text; and when nearly every cell is a number or date, say which cells are not."""
    for name, test, what in (("int", _is_int, "whole numbers"), ("float", _is_float, "numbers")):
        share = col.share(name, test, _ACCEPT)
        if share >= _ACCEPT:
            bad = _examples(col.failures(test))
            return f"text: {_pct(share)} of sampled values are {what}, but not {bad}"
    guess = _guess_date(col, compact=False, minimum=_ACCEPT, birthday=False)
    if guess is not None:
        shown = _format_text(guess)
        return f"text: {_pct(guess.share)} of sampled values are dates ({shown}), not all"
    return "text"


# --- the draft --------------------------------------------------------------------


@dataclass
class _Line:
    entry: str  # "key: value", or "# key: value" for a suggestion left commented out
    comment: str = ""


@dataclass
class _Writer:
    notes: list[str] = field(default_factory=list)
    checks: int = 0

    def line(self, entry: str, comment: str, path: str, check: str | None = None) -> _Line:
        """A line whose comment gets a CHECK (and a note) when ``check`` is given."""
        if check is not None:
            self.checks += 1
            self.notes.append(f"{path}: {check}")
            comment = f"CHECK: {check}" + (f"; {comment}" if comment else "")
        return _Line(entry, comment)


def _render(lines: Sequence[_Line], indent: str) -> list[str]:
    width = min(max((len(line.entry) for line in lines), default=0), 56)
    out = []
    for line in lines:
        text = indent + line.entry
        if line.comment:
            comment = _COMMENT_UNSAFE.sub("?", line.comment)
            text = f"{text}{' ' * (width - len(line.entry))}  # {comment}"
        out.append(text)
    return out


def _usable(header: Sequence[str]) -> dict[str, str]:
    """Why each column cannot be named in a mapping (validate's own rules)."""
    repeated = {name.split("#", 1)[0] for name in header if "#" in name}
    why: dict[str, str] = {}
    for name in header:
        if not name or name != name.strip():
            why[name] = "its name starts or ends with a space character the mapping loses"
        elif name in repeated:
            why[name] = (
                "the file has other columns named like it (#2, #3 ...), and validate "
                "rejects the bare name"
            )
    return why


def _columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[_Col]:
    width = len(header)
    values: list[list[str]] = [[] for _ in header]
    for row in rows:
        for i, cell in enumerate(row[:width]):
            text = cv.clean(cell) if cell else ""
            if text:
                values[i].append(text)
    unusable = _usable(header)
    return [
        _Col(
            index=i,
            name=name,
            tokens=_tokens(name),
            distinct=Counter(values[i]),
            filled=len(values[i]),
            unusable=unusable.get(name, ""),
        )
        for i, name in enumerate(header)
    ]


def _choose_id(cols: Sequence[_Col], rows: int, out: _Writer) -> tuple[_Col | None, _Line | None]:
    usable = [c for c in cols if not c.unusable]
    if not usable:
        return None, None
    scored = [(_id_score(c.name, c.tokens), c) for c in usable]

    def unique(col: _Col) -> bool:
        return rows > 0 and col.filled == rows and len(col.distinct) == rows

    good = [(score, c) for score, c in scored if unique(c)]
    rejected = [c for score, c in scored if score >= 2 and not unique(c)]
    why_not = ""  # a sentence about id-named columns that the sample rules out
    if rejected and rows > 0:
        parts = []
        for c in rejected[:3]:
            problems = []
            if rows - c.filled:
                problems.append(f"{rows - c.filled} empty")
            if c.filled - len(c.distinct):
                problems.append(f"{c.filled - len(c.distinct)} repeated")
            parts.append(f"{_shown(c.name)} ({', '.join(problems)} of {rows} sampled values)")
        why_not = (
            f"{', '.join(parts)} {'is' if len(parts) == 1 else 'are'} named like an id but "
            "not present and unique in every sampled row"
        )
    # An id-named column that is unique where filled, with a few empty cells, is still
    # the customer id (those rows fail on their own); better than an email or a name.
    nearly = [
        (score, c)
        for score, c in scored
        if score == 3 and c.filled and len(c.distinct) == c.filled and c.filled >= 0.95 * rows
    ]
    if nearly and not any(score == 3 for score, _ in good):
        _, col = max(nearly, key=lambda sc: (sc[1].filled, -sc[1].index))
        comment = f"header {_shown(col.name)} is an id name; its sampled values are unique"
        check = (
            f"{rows - col.filled} of {rows} sampled rows have no value in {_shown(col.name)}; "
            "those rows will fail until it is filled in"
        )
        return col, out.line(f"user_id: {_q(col.name)}", comment, "user_id", check)
    if good:
        return _chosen_id(good, rows, why_not, out)
    if rows == 0:
        _, col = max(scored, key=lambda sc: (sc[0], -sc[1].index))
        check = f"no sampled rows, so {_shown(col.name)} was chosen by its name only"
        return col, out.line(f"user_id: {_q(col.name)}", "", "user_id", check)
    col = usable[0]
    check = (
        f"NO COLUMN HAS A PRESENT, UNIQUE VALUE IN EVERY SAMPLED ROW; using the first "
        f"column {_shown(col.name)} as a placeholder{'; ' + why_not if why_not else ''}. "
        "Rows with an empty id "
        "fail and rows sharing an id update the same customer: name the right column"
    )
    return col, out.line(f"user_id: {_q(col.name)}", "", "user_id", check)


def _chosen_id(
    good: list[tuple[int, _Col]], rows: int, why_not: str, out: _Writer
) -> tuple[_Col, _Line]:
    """The best of the columns present and unique in every sampled row."""
    score, col = max(good, key=lambda sc: (sc[0], not _is_contact(sc[1]), -sc[1].index))
    evidence = f"all {rows} sampled values are present and unique"
    entry = f"user_id: {_q(col.name)}"
    contacts = [c for _, c in good if c is not col and _is_contact(c)]
    if contacts and not _is_contact(col):
        # A phone or email is unique too, but people change them: each change would
        # make a new Metrix user, while an account number stays.
        evidence += (
            f"; preferred to {', '.join(_shown(c.name) for c in contacts[:2])}, also unique, "
            "because phones and emails change and an id does not"
        )
    if score == 3:
        comment = f"header {_shown(col.name)} is an id name; {evidence}"
        if not why_not:
            return col, out.line(entry, comment, "user_id")
        # Another column is also named like an id: the user must say which is right.
        check = f"{why_not}; chose {_shown(col.name)} instead"
        return col, out.line(entry, comment, "user_id", check)
    warning = (
        "; it is a contact field: phones and emails change, and a changed one would make "
        "a new Metrix user"
        if _is_contact(col)
        else ""
    )
    check = (
        f"{why_not or 'no header is a customer id name'}; chose "
        f"{_shown(col.name)} because {evidence}{warning}. Confirm it identifies each "
        "customer, or name the right column"
    )
    return col, out.line(entry, "", "user_id", check)


def _hashes(
    usable: list[_Col], out: _Writer
) -> tuple[dict[str, str], list[_Line], set[int], set[int], dict[int, str]]:
    """Ready-made hashes: the header says of what; hash columns never match a field.

    Returns the hashed fields (field -> column), their lines, the columns mapped under
    ``hashed:``, every hash column whose header says of what, and why some of them are
    custom attributes after all (column index -> reason).
    """
    hashed: dict[str, str] = {}
    hash_lines: list[_Line] = []
    custom_comment: dict[int, str] = {}  # column index -> why it is custom after all
    hash_cols: set[int] = set()  # mapped under hashed:
    hash_like: set[int] = set()  # hashes whose header says of what: never a standard field
    for col in usable:
        if not col.filled or not all(_HASH.fullmatch(v) for v in col.distinct):
            continue
        folded = _norm(col.name)
        says_email = any(w in folded for w in _HASH_EMAIL_WORDS)
        says_phone = any(w in folded for w in _HASH_PHONE_WORDS)
        if says_email == says_phone:
            continue  # left to custom, which says why
        target = "hashedEmail" if says_email else "hashedPhoneNumber"
        hash_like.add(col.index)
        what = "email" if says_email else "phone"
        if target in hashed:
            custom_comment[col.index] = (
                f"hashes of {what}s, but hashed.{target} already uses {_shown(hashed[target])}"
            )
            continue
        hashed[target] = col.name
        hash_cols.add(col.index)
        comment = (
            f"every sampled cell is a 64-hex-digit hash and header {_shown(col.name)} "
            f"says {what}; sent as-is (lower-cased), so they must be SHA-256 of the "
            "normalised value"
        )
        hash_lines.append(out.line(f"{target}: {_flow([('column', _q(col.name))])}", comment, ""))

    return hashed, hash_lines, hash_cols, hash_like, custom_comment


def _fields(
    usable: list[_Col], hash_like: set[int], custom_comment: dict[int, str], out: _Writer
) -> tuple[dict[str, str], list[_Line], set[int]]:
    """Standard fields: each column's best field, then the best column for each field.

    Returns the fields (field -> column), their lines and the columns they use; adds to
    ``custom_comment`` why a contender is left to custom.
    """
    by_field: dict[str, list[_Match]] = {}
    for col in usable:
        if col.index in hash_like:
            continue
        match = _candidate(col)
        if match is not None:
            by_field.setdefault(match.field, []).append(match)
    fields: dict[str, str] = {}
    field_lines: list[_Line] = []
    field_cols: set[int] = set()
    for field_name in _FIELD_ORDER:
        matches = by_field.get(field_name, [])
        if not matches:
            continue
        path = f"fields.{field_name}"
        valid = sorted(
            (m for m in matches if m.share is None or m.share >= _ACCEPT),
            key=lambda m: m.rank,
            reverse=True,
        )
        contradicted = [m for m in matches if m not in valid]
        tied = [m for m in valid if m.rank == valid[0].rank] if valid else []
        if len(tied) == 1:
            winner = tied[0]
            field_cols.add(winner.col.index)
            fields[field_name] = winner.col.name
            others = [m for m in valid if m is not winner]
            comment = _why(winner)
            if others:
                comment += "; also considered " + ", ".join(_shown(m.col.name) for m in others)
            check = "; ".join(winner.checks) or None
            if winner.strength == 0 and check is None:
                check = "matched by the cells only, not by the header"
            entry = f"{field_name}: {_flow(winner.spec)}"
            field_lines.append(out.line(entry, comment, path, check))
            for m in others:
                why = (
                    "more of its cells fit"
                    if m.strength == winner.strength
                    else "its header is the closer match"
                )
                custom_comment[m.col.index] = (
                    f"also looks like {field_name}, but {path} uses {_shown(winner.col.name)} "
                    f"({why})"
                )
        elif tied:
            names = " and ".join(_shown(m.col.name) for m in tied)
            check = (
                f"{names} fit {field_name} equally well; "
                "uncomment the right one and delete its custom: line"
            )
            for n, m in enumerate(tied):
                entry = f"# {field_name}: {_flow(m.spec)}"
                # One CHECK (and note) for the choice, on the first alternative.
                field_lines.append(out.line(entry, _why(m), path, None if n else check))
                custom_comment[m.col.index] = f"competes for {field_name}: see fields"
        for m in contradicted:
            check = f"{_reason(m)}, but only {m.evidence}"
            bad = m.col.failures(m.test) if m.col.filled else []
            if bad:
                check += f" (e.g. {_examples(bad)})"
            check += "; left out: uncomment it if the column is right"
            entry = f"# {field_name}: {_flow(m.spec)}"
            field_lines.append(out.line(entry, "", path, check))
            custom_comment[m.col.index] = (
                f"its header names {field_name} but its cells do not fit: see fields"
            )

    return fields, field_lines, field_cols


def _customs(
    cols: list[_Col], skip: set[int], custom_comment: dict[int, str], out: _Writer
) -> tuple[dict[str, tuple[str, str, str | None]], list[_Line], list[_Line]]:
    """Everything else is a custom attribute with the strictest type its cells allow;
    columns a mapping cannot name are listed as left out."""
    custom: dict[str, tuple[str, str, str | None]] = {}
    custom_lines: list[_Line] = []
    left_out: list[_Line] = []
    used_keys: set[str] = set()
    for col in cols:
        if col.unusable:
            note = f"column {col.index + 1} {_shown(col.name)} cannot be mapped: {col.unusable}"
            out.notes.append(note)
            left_out.append(_Line(f"# column {col.index + 1} {_shown(col.name)}: {col.unusable}"))
            continue
        if col.index in skip:
            continue
        inferred = _infer_custom(col)
        comment = inferred.comment
        if col.index in custom_comment:
            comment = f"{custom_comment[col.index]}; {comment}"
        key = _custom_key(col.name, col.index + 1, used_keys)
        pairs = [("column", _q(col.name)), ("type", inferred.kind)]
        if inferred.format is not None:
            pairs.append(("format", _q(inferred.format)))
        if inferred.thousands is not None:
            pairs.append(("thousands", _q(inferred.thousands)))
        custom[key] = (col.name, inferred.kind, inferred.format)
        entry = f"{_yaml_key(key)}: {_flow(pairs)}"
        line = out.line(entry, comment, f"custom.{key}", inferred.check)
        custom_lines.append(line)

    return custom, custom_lines, left_out


def draft_mapping(
    header: list[str],
    rows: list[list[str]],
    *,
    source_name: str = "",
    sheet: str | None = None,
    reader: SourceOptions | None = None,
) -> Draft:
    """Draft a commented mapping YAML from a file's unique header and sampled rows.

    ``reader`` holds the reader options the file needed (header row, and encoding or
    delimiter when not detected): the draft's ``source:`` names them, so validate
    and run need none.

    ``header`` holds the names ``readers.make_header`` returns; ``rows`` the sampled
    cells as text (short rows are read as empty cells). The YAML loads with
    ``parse_mapping`` and compiles against ``header`` unchanged whenever at least one
    column can be named in a mapping; otherwise ``Draft.user_id`` is None and the
    notes say why. Lines the sample could not settle are marked ``CHECK`` and listed
    in ``Draft.notes``.
    """
    out = _Writer()
    cols = _columns(header, rows)
    usable = [c for c in cols if not c.unusable]
    id_col, id_line = _choose_id(cols, len(rows), out)

    hashed, hash_lines, hash_cols, hash_like, custom_comment = _hashes(usable, out)
    fields, field_lines, field_cols = _fields(usable, hash_like, custom_comment, out)
    skip = {c.index for c in (id_col,) if c is not None} | field_cols | hash_cols
    custom, custom_lines, left_out = _customs(cols, skip, custom_comment, out)

    if id_col is None:
        out.notes.insert(
            0,
            "user_id: no column can be named in a mapping (see below), so the draft "
            "has no user_id and validate will reject it; rename the columns in the file",
        )
        out.checks += 1
    text = _assemble(
        source_name=source_name,
        sheet=sheet,
        reader=reader or SourceOptions(),
        rows=len(rows),
        id_line=id_line,
        field_lines=field_lines,
        hash_lines=hash_lines,
        custom_lines=custom_lines,
        left_out=left_out,
        checks=out.checks,
    )
    return Draft(
        yaml=text,
        user_id=None if id_col is None else id_col.name,
        fields=fields,
        custom=custom,
        hashed=hashed,
        notes=out.notes,
    )


def _assemble(
    *,
    source_name: str,
    sheet: str | None,
    reader: SourceOptions,
    rows: int,
    id_line: _Line | None,
    field_lines: list[_Line],
    hash_lines: list[_Line],
    custom_lines: list[_Line],
    left_out: list[_Line],
    checks: int,
) -> str:
    where = _shown(source_name, 120) if source_name else "a file"
    if sheet:
        where += f", sheet {_shown(sheet, 120)}"
    rows_text = "1 sampled row" if rows == 1 else f"{rows} sampled rows"
    marked = "1 line is" if checks == 1 else f"{checks} lines are"
    head = [
        f"Metrix mapping drafted by `metrix-import init-mapping` from {where}.",
        f"Inferred from the header and {rows_text}; {marked} marked CHECK.",
        "This is a draft: review every line marked CHECK before importing,",
        "then run `metrix-import validate` with this file and the data.",
    ]
    out = [f"# {_COMMENT_UNSAFE.sub('?', line)}" for line in head]
    if id_line is None:
        out.append("# user_id: CHECK: no column can be named in a mapping; see below")
    else:
        out += _render([id_line], "")
    out += ["source:", f"  header_row: {reader.header_row}"]
    if reader.encoding != "auto":
        out.append(f"  encoding: {reader.encoding}")
    if reader.delimiter != "auto":
        shown = "tab" if reader.delimiter == "\t" else json.dumps(reader.delimiter)
        out.append(f"  delimiter: {shown}")
    if sheet:
        out.append(f"  sheet: {_q(sheet)}")
    for name, lines in (("fields", field_lines), ("hashed", hash_lines), ("custom", custom_lines)):
        if not lines:
            continue
        # Even when every line is commented out: `fields:` alone loads as empty, and
        # uncommenting a line then gives valid YAML (`fields: {}` would not).
        out.append(f"{name}:")
        out += _render(lines, "  ")
    if left_out:
        out.append("# Columns a mapping cannot name (rename them in the file to import them):")
        out += _render(left_out, "")
    out.append("unmapped: ignore")
    return "\n".join(out) + "\n"
