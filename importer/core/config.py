"""The mapping file: its model and its validation.

A mapping is validated once, before any row is read, and *every* problem is reported
together with its YAML path, what was found and what is allowed.
"""

from __future__ import annotations

import codecs
import difflib
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from importer.core.convert import (
    NAMED_FORMATS,
    TRANSFORMS,
    WHITESPACE,
    get_timezone,
    jalali_pattern_ok,
)
from importer.core.phone import SUPPORTED_REGIONS
from importer.errors import MappingError, MappingProblem

# Standard Metrix user fields and how each is converted.
STANDARD_FIELDS: dict[str, str] = {
    "firstName": "text",
    "lastName": "text",
    "email": "email",
    "phoneNumber": "phone",
    "gender": "gender",
    "birthday": "birthday",
    "country": "text",
    "city": "text",
    "region": "text",
    "locality": "text",
}
# Hashed fields and the standard field whose normalised value each hashes.
HASHED_FIELDS: dict[str, str] = {"hashedEmail": "email", "hashedPhoneNumber": "phoneNumber"}
CUSTOM_TYPES = ("string", "int", "float", "bool", "json", "date", "datetime")
PHONE_FORMATS = ("keep", "national", "e164")
DELIMITERS = {",": ",", ";": ";", "\t": "\t", "|": "|", "tab": "\t", "\\t": "\t"}
DATE_KINDS = frozenset({"birthday", "time", "date", "datetime"})

_TOP_KEYS = (
    "user_id", "time", "source", "fields", "hashed", "custom",
    "unmapped", "privacy", "empty",
)  # fmt: skip
_SOURCE_KEYS = ("sheet", "encoding", "delimiter", "header_row", "timezone")
# Spec keys each kind of field accepts; anything else is reported, not ignored.
_BASE_KEYS = frozenset({"column", "value", "required", "default", "values", "transform"})
_KIND_KEYS: dict[str, frozenset[str]] = {
    "id": frozenset({"column", "transform", "values"}),
    "text": _BASE_KEYS,
    "string": _BASE_KEYS,
    "email": _BASE_KEYS,
    "gender": _BASE_KEYS,
    "json": _BASE_KEYS,
    "phone": _BASE_KEYS | {"phone_format", "region"},
    "birthday": _BASE_KEYS | {"format"},
    "date": _BASE_KEYS | {"format"},
    "time": _BASE_KEYS | {"format", "timezone"},
    "datetime": _BASE_KEYS | {"format", "timezone"},
    "int": _BASE_KEYS | {"thousands"},
    "float": _BASE_KEYS | {"thousands"},
    "bool": _BASE_KEYS | {"true_values", "false_values"},
}
_STRPTIME_DIRECTIVES = frozenset("aAbBcdfGHIjmMpSuUVwWxXyYzZ%")


@dataclass(frozen=True)
class FieldSpec:
    """How one value of the message is produced: from a column, or a constant."""

    path: str  # YAML path, for messages: "custom.total_spent"
    kind: str  # id | text | email | phone | gender | birthday | time | custom type
    column: str | None = None
    value: Any = None
    has_value: bool = False
    formats: tuple[str, ...] = ()
    timezone: str | None = None
    required: bool = False
    default: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    true_values: tuple[str, ...] = ()
    false_values: tuple[str, ...] = ()
    transform: tuple[str, ...] = ()
    thousands: str | None = None
    phone_format: str = "keep"
    region: str | None = None


@dataclass(frozen=True)
class HashedSpec:
    """A hashed field: SHA-256 of a standard field's normalised value, or a ready column."""

    path: str
    target: str
    from_field: str | None = None
    column: str | None = None


@dataclass(frozen=True)
class SourceOptions:
    """How to read the input; CLI flags override the mapping's ``source:``."""

    sheet: str | int | None = None
    encoding: str = "auto"
    delimiter: str = "auto"
    header_row: int = 1
    timezone: str = "UTC"


@dataclass(frozen=True)
class Mapping:
    """A validated mapping file."""

    path: str
    user_id: FieldSpec
    time: FieldSpec | None
    source: SourceOptions
    fields: dict[str, FieldSpec]
    hashed: dict[str, HashedSpec]
    custom: dict[str, FieldSpec]
    unmapped: str = "ignore"
    send_clear: bool = True
    empty: str = "omit"
    fingerprint: str = ""

    def with_source(self, **overrides: Any) -> Mapping:
        """A copy whose source options take the given (non-None) overrides."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, source=replace(self.source, **given)) if given else self

    def column_specs(self) -> list[tuple[str, str]]:
        """Every (YAML path, column name) the mapping reads, in mapping order."""
        specs: list[FieldSpec] = [self.user_id]
        if self.time is not None:
            specs.append(self.time)
        specs += [*self.fields.values(), *self.custom.values()]
        named = [(s.path, s.column) for s in specs if s.column is not None]
        named += [(h.path, h.column) for h in self.hashed.values() if h.column is not None]
        return named


def load_mapping(path: str | Path) -> Mapping:
    """Read and validate a mapping file; raises MappingError listing every problem."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MappingError(name, [MappingProblem("", "the mapping file does not exist")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        problem = MappingProblem("", f"cannot read the mapping file ({exc})")
        raise MappingError(name, [problem]) from None
    return parse_mapping(text, name)


def parse_mapping(text: str, name: str = "<mapping>") -> Mapping:
    """Validate mapping YAML text; raises MappingError listing every problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingError(name, [_yaml_problem(exc)]) from None
    checker = _Checker()
    mapping = checker.mapping(raw, name)
    if checker.problems or mapping is None:
        raise MappingError(name, checker.problems)
    return mapping


def _yaml_problem(exc: yaml.YAMLError) -> MappingProblem:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return MappingProblem(where, f"not valid YAML: {problem}")


def _closest(word: str, options: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _text(value: Any) -> str:
    """YAML scalars as the text a cell would hold (YAML 1.1 turns `yes` into True)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Checker:
    """Walks the raw YAML, building the model and collecting problems."""

    def __init__(self) -> None:
        self.problems: list[MappingProblem] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(MappingProblem(path, message))

    def mapping(self, raw: Any, name: str) -> Mapping | None:
        if not isinstance(raw, dict):
            found = "an empty file" if raw is None else f"a {type(raw).__name__}"
            self.problem("", f"expected a mapping with at least `user_id:`, found {found}")
            return None
        for key in raw:
            if key not in _TOP_KEYS:
                self.problem(
                    str(key),
                    f"unknown key{_closest(str(key), _TOP_KEYS)}; "
                    f"expected one of: {', '.join(_TOP_KEYS)}",
                )
        if "user_id" not in raw:
            self.problem("user_id", "missing: name the column that holds each customer's id")
            user_id = FieldSpec("user_id", "id", column="?")
        else:
            user_id = self.spec("user_id", raw["user_id"], "id") or FieldSpec("user_id", "id")
        time = self.spec("time", raw["time"], "time") if raw.get("time") is not None else None
        source = self.source(raw.get("source"))
        fields = self.fields(raw.get("fields"))
        custom = self.custom(raw.get("custom"))
        send_clear = self.privacy(raw.get("privacy"))
        hashed = self.hashed(raw.get("hashed"), fields, send_clear)
        unmapped = self.choice("unmapped", raw.get("unmapped", "ignore"), ("ignore", "custom"))
        # `empty: null` parses as YAML's null; that is the spelling the docs use.
        empty_raw = "null" if "empty" in raw and raw["empty"] is None else raw.get("empty", "omit")
        empty = self.choice("empty", empty_raw, ("omit", "null"))
        # Key order matters: it is the order of keys in every message, so of its id.
        canonical = json.dumps(raw, default=str, ensure_ascii=False)
        return Mapping(
            path=name,
            user_id=user_id,
            time=time,
            source=source,
            fields=fields,
            hashed=hashed,
            custom=custom,
            unmapped=unmapped,
            send_clear=send_clear,
            empty=empty,
            fingerprint=hashlib.sha256(canonical.encode()).hexdigest(),
        )

    def choice(self, path: str, value: Any, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            self.problem(path, f"found {value!r}; expected one of: {', '.join(allowed)}")
            return allowed[0]
        return str(value)

    def section(self, path: str, raw: Any) -> dict[str, Any]:
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.problem(path, f"expected a mapping of names to columns, found {raw!r}")
            return {}
        return {str(k): v for k, v in raw.items()}

    def fields(self, raw: Any) -> dict[str, FieldSpec]:
        out: dict[str, FieldSpec] = {}
        for name, value in self.section("fields", raw).items():
            path = f"fields.{name}"
            if name not in STANDARD_FIELDS:
                hint = (
                    " (hashed fields go under `hashed:`)"
                    if name in HASHED_FIELDS
                    else _closest(name, STANDARD_FIELDS)
                )
                self.problem(
                    path,
                    f"unknown Metrix user field{hint}; expected one of: "
                    f"{', '.join(STANDARD_FIELDS)}; put other data under `custom:`",
                )
                continue
            spec = self.spec(path, value, STANDARD_FIELDS[name])
            if spec is not None:
                out[name] = spec
        return out

    def custom(self, raw: Any) -> dict[str, FieldSpec]:
        out: dict[str, FieldSpec] = {}
        for key, value in self.section("custom", raw).items():
            path = f"custom.{key}"
            kind = "string"
            if isinstance(value, dict) and "type" in value:
                kind = str(value["type"])
                if kind not in CUSTOM_TYPES:
                    self.problem(
                        f"{path}.type",
                        f"unknown type '{kind}'{_closest(kind, CUSTOM_TYPES)}; "
                        f"expected one of: {', '.join(CUSTOM_TYPES)}",
                    )
                    continue
                value = {k: v for k, v in value.items() if k != "type"}
            if len(key.encode()) > 512:
                self.problem(path, "a custom attribute name may be at most 512 bytes")
            spec = self.spec(path, value, kind)
            if spec is not None:
                out[key] = spec
        return out

    def privacy(self, raw: Any) -> bool:
        if raw is None:
            return True
        if not isinstance(raw, dict) or set(raw) - {"send_clear"}:
            self.problem("privacy", f"expected {{send_clear: true|false}}, found {raw!r}")
            return True
        value = raw.get("send_clear", True)
        if not isinstance(value, bool):
            self.problem("privacy.send_clear", f"expected true or false, found {value!r}")
            return True
        return value

    def hashed(
        self, raw: Any, fields: dict[str, FieldSpec], send_clear: bool
    ) -> dict[str, HashedSpec]:
        out: dict[str, HashedSpec] = {}
        for name, value in self.section("hashed", raw).items():
            path = f"hashed.{name}"
            if name not in HASHED_FIELDS:
                self.problem(
                    path,
                    f"unknown hashed field{_closest(name, HASHED_FIELDS)}; "
                    f"expected one of: {', '.join(HASHED_FIELDS)}",
                )
                continue
            source_field = HASHED_FIELDS[name]
            if isinstance(value, str):
                value = {"from": value}
            if not isinstance(value, dict) or len(set(value) & {"from", "column"}) != 1:
                self.problem(
                    path,
                    f"expected {{from: {source_field}}} or {{column: <column of ready hashes>}}, "
                    f"found {value!r}",
                )
                continue
            unknown = set(value) - {"from", "column"}
            if unknown:
                self.problem(path, f"unknown keys {sorted(unknown)}; expected `from` or `column`")
            if "from" in value:
                if value["from"] != source_field:
                    self.problem(
                        f"{path}.from",
                        f"{name} can only be computed from {source_field}, found {value['from']!r}",
                    )
                elif source_field not in fields:
                    self.problem(
                        f"{path}.from",
                        f"fields.{source_field} is not mapped, so there is nothing to hash; "
                        f"map it under `fields:` or use {{column: ...}}",
                    )
                out[name] = HashedSpec(path, name, from_field=source_field)
            else:
                out[name] = HashedSpec(path, name, column=_text(value["column"]))
        # Without clear text, email and phone still reach Metrix as their hashes.
        if not send_clear:
            for name, source_field in HASHED_FIELDS.items():
                if name not in out and source_field in fields:
                    out[name] = HashedSpec(f"hashed.{name}", name, from_field=source_field)
        return out

    def source(self, raw: Any) -> SourceOptions:
        if raw is None:
            return SourceOptions()
        if not isinstance(raw, dict):
            self.problem("source", f"expected a mapping, found {raw!r}")
            return SourceOptions()
        for key in raw:
            if key not in _SOURCE_KEYS:
                self.problem(
                    f"source.{key}",
                    f"unknown key{_closest(str(key), _SOURCE_KEYS)}; "
                    f"expected one of: {', '.join(_SOURCE_KEYS)}",
                )
        options = SourceOptions()
        sheet = raw.get("sheet")
        if sheet is not None and (isinstance(sheet, bool) or not isinstance(sheet, str | int)):
            self.problem("source.sheet", f"expected a sheet name or 0-based index, found {sheet!r}")
            sheet = None
        if isinstance(sheet, int) and sheet < 0:
            self.problem("source.sheet", f"a sheet index starts at 0, found {sheet}")
            sheet = None
        encoding = str(raw.get("encoding", "auto"))
        if problem := encoding_problem(encoding):
            self.problem("source.encoding", problem)
            encoding = "auto"
        delimiter = str(raw.get("delimiter", "auto"))
        if problem := delimiter_problem(delimiter):
            self.problem("source.delimiter", problem)
            delimiter = "auto"
        header_row = raw.get("header_row", 1)
        if isinstance(header_row, bool) or not isinstance(header_row, int) or header_row < 1:
            self.problem(
                "source.header_row", f"expected a line number from 1, found {header_row!r}"
            )
            header_row = 1
        zone = str(raw.get("timezone", "UTC"))
        if problem := timezone_problem(zone):
            self.problem("source.timezone", problem)
            zone = "UTC"
        return replace(
            options,
            sheet=sheet,
            encoding=encoding,
            delimiter=DELIMITERS.get(delimiter, delimiter),
            header_row=header_row,
            timezone=zone,
        )

    def spec(self, path: str, raw: Any, kind: str) -> FieldSpec | None:  # noqa: C901
        if isinstance(raw, str | int | float) and not isinstance(raw, bool):
            raw = {"column": raw}
        if not isinstance(raw, dict):
            self.problem(
                path, f"expected a column name or a spec like {{column: ...}}, found {raw!r}"
            )
            return None
        allowed = _KIND_KEYS[kind]
        for key in raw:
            if key not in allowed:
                near = _closest(str(key), allowed)
                what = "a custom attribute of type " + kind if path.startswith("custom.") else kind
                self.problem(
                    f"{path}.{key}",
                    f"not a setting of {what}{near}; allowed: {', '.join(sorted(allowed))}",
                )
        has_column, has_value = "column" in raw, "value" in raw
        if has_column == has_value:
            self.problem(
                path, "give exactly one of `column:` (read from the file) or `value:` (a constant)"
            )
            return None
        column = None
        if has_column:
            column = _text(raw["column"]).strip(WHITESPACE)  # as headers are trimmed
            if not column or raw["column"] is None:
                self.problem(f"{path}.column", "the column name is empty")
        formats = self.formats(f"{path}.format", raw.get("format"), kind)
        zone = raw.get("timezone")
        if zone is not None and (problem := timezone_problem(str(zone))):
            self.problem(f"{path}.timezone", problem)
        transform = raw.get("transform", [])
        if isinstance(transform, str):
            transform = [transform]
        if not isinstance(transform, list) or any(t not in TRANSFORMS for t in transform):
            self.problem(
                f"{path}.transform",
                f"found {transform!r}; expected a list of: {', '.join(TRANSFORMS)}",
            )
            transform = []
        values = raw.get("values", {})
        if not isinstance(values, dict):
            self.problem(
                f"{path}.values", f"expected a map of cell text to value, found {values!r}"
            )
            values = {}
        if kind == "gender":
            for cell, gender in values.items():
                if gender not in ("Male", "Female", "Other"):
                    self.problem(
                        f"{path}.values.{cell}",
                        f"found {gender!r}; a gender must be Male, Female or Other",
                    )
        phone_format = str(raw.get("phone_format", "keep"))
        if phone_format not in PHONE_FORMATS:
            self.problem(
                f"{path}.phone_format",
                f"found {phone_format!r}; expected one of: {', '.join(PHONE_FORMATS)}",
            )
        region = raw.get("region")
        if region is not None and str(region).upper() not in SUPPORTED_REGIONS:
            self.problem(
                f"{path}.region",
                f"unknown region {region!r}; supported: {', '.join(sorted(SUPPORTED_REGIONS))} "
                "(or use phone_format: e164 with numbers that carry their +country code)",
            )
        if kind == "phone" and phone_format != "keep" and region is None:
            self.problem(
                f"{path}.region",
                f"phone_format: {phone_format} needs the numbers' country, e.g. `region: IR`",
            )
        thousands = raw.get("thousands")
        if thousands is not None and (not isinstance(thousands, str) or len(thousands) != 1):
            self.problem(
                f"{path}.thousands", f"expected one character such as ',', found {thousands!r}"
            )
            thousands = None
        required = raw.get("required", False)
        if not isinstance(required, bool):
            self.problem(f"{path}.required", f"expected true or false, found {required!r}")
            required = False
        default = raw.get("default")
        true_values = self.words(f"{path}.true_values", raw.get("true_values", []))
        false_values = self.words(f"{path}.false_values", raw.get("false_values", []))
        return FieldSpec(
            path=path,
            kind=kind,
            column=column,
            value=raw.get("value"),
            has_value=has_value,
            formats=formats,
            timezone=None if zone is None else str(zone),
            required=required or kind == "id",
            default=None if default is None else _text(default),
            values={_text(k): v for k, v in values.items()},
            true_values=true_values,
            false_values=false_values,
            transform=tuple(transform),
            thousands=thousands,
            phone_format=phone_format,
            region=None if region is None else str(region).upper(),
        )

    def words(self, path: str, raw: Any) -> tuple[str, ...]:
        if isinstance(raw, str | int):
            raw = [raw]
        if not isinstance(raw, list):
            self.problem(path, f"expected a list of words, found {raw!r}")
            return ()
        return tuple(_text(w) for w in raw)

    def formats(self, path: str, raw: Any, kind: str) -> tuple[str, ...]:
        if raw is None:
            return ()
        names = raw if isinstance(raw, list) else [raw]
        out: list[str] = []
        for index, name in enumerate(names):
            where = f"{path}[{index}]" if isinstance(raw, list) else path
            if not isinstance(name, str) or not name:
                self.problem(where, f"expected a date format text, found {name!r}")
            elif problem := format_problem(name, kind):
                self.problem(where, problem)
            else:
                out.append(name)
        return tuple(out)


def format_problem(name: str, kind: str) -> str | None:
    """Why a `format:` value cannot be used, or None when it can."""
    if kind not in DATE_KINDS:
        return None
    if name in NAMED_FORMATS:
        return None
    if name.startswith("jalali:"):
        if jalali_pattern_ok(name.removeprefix("jalali:")):
            return None
        return (
            f"cannot read Solar Hijri dates with {name!r}: use digits-only directives "
            "such as 'jalali:%Y/%m/%d' (optionally with %H:%M:%S)"
        )
    if "%" not in name:
        return (
            f"unknown format {name!r}; expected a strptime pattern such as '%d/%m/%Y', "
            f"or one of: {', '.join(NAMED_FORMATS)}, jalali:<pattern>"
        )
    index = 0
    while (index := name.find("%", index)) != -1:
        directive = name[index + 1 : index + 2]
        if directive not in _STRPTIME_DIRECTIVES:
            return f"'%{directive}' in {name!r} is not a date directive (see Python's strptime)"
        index += 2
    return None


def encoding_problem(encoding: str) -> str | None:
    """Why an encoding name is unusable, or None."""
    if encoding == "auto":
        return None
    try:
        codecs.lookup(encoding)
    except LookupError:
        return (
            f"unknown encoding {encoding!r}; use auto or a codec name such as "
            "utf-8, windows-1256, windows-1252, utf-16"
        )
    return None


def delimiter_problem(delimiter: str) -> str | None:
    """Why a delimiter is unusable, or None."""
    if delimiter == "auto" or delimiter in DELIMITERS:
        return None
    return f"found {delimiter!r}; expected auto, ',', ';', '\\t' (or tab) or '|'"


def timezone_problem(zone: str) -> str | None:
    """Why a time zone name is unusable, or None."""
    try:
        get_timezone(zone)
    except ValueError:
        return f"unknown time zone {zone!r}; use an IANA name such as UTC or Asia/Tehran"
    return None
