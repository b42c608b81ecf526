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
    "unmapped", "privacy", "empty", "on_invalid",
)  # fmt: skip
ON_INVALID = ("fail_row", "drop_field")
# A mapping is a page of YAML; anything this big is not one (and is not read).
MAX_MAPPING_BYTES = 2 * 1024 * 1024
_SOURCE_KEYS = ("sheet", "encoding", "delimiter", "header_row", "timezone")
# Spec keys each kind of field accepts; anything else is reported, not ignored.
_BASE_KEYS = frozenset({"column", "value", "required", "default", "values", "transform"})
# `on_invalid` is for optional data: never the customer id or the message time.
_FIELD_KEYS = _BASE_KEYS | {"on_invalid"}
_KIND_KEYS: dict[str, frozenset[str]] = {
    "id": frozenset({"column", "transform", "values"}),
    "text": _FIELD_KEYS,
    "string": _FIELD_KEYS,
    "email": _FIELD_KEYS,
    "gender": _FIELD_KEYS,
    "json": _FIELD_KEYS,
    "phone": _FIELD_KEYS | {"phone_format", "region", "extension"},
    "birthday": _FIELD_KEYS | {"format"},
    "date": _FIELD_KEYS | {"format"},
    "time": _BASE_KEYS | {"format", "timezone"},
    "datetime": _FIELD_KEYS | {"format", "timezone"},
    "int": _FIELD_KEYS | {"thousands"},
    "float": _FIELD_KEYS | {"thousands"},
    "bool": _FIELD_KEYS | {"true_values", "false_values"},
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
    region: tuple[str, ...] = ()  # phone: tried in order for numbers without +code
    extension: str = ""  # phone: the custom attribute that receives extensions
    on_invalid: str = "fail_row"  # or "drop_field": send the row without this value


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
    on_invalid: str = "fail_row"

    @classmethod
    def from_dict(cls, raw: dict[str, Any], name: str = "<mapping>") -> Mapping:
        """Validate a mapping given as a dict (what the YAML file would hold); raises
        MappingError listing every problem."""
        return mapping_from_raw(raw, name)

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
        size = Path(path).stat().st_size
        if size > MAX_MAPPING_BYTES:
            problem = MappingProblem(
                "",
                f"the file is {size / 1024 / 1024:.1f} MB; a mapping file is at most "
                f"{MAX_MAPPING_BYTES // 1024 // 1024} MB (a few hundred lines are typical): "
                "check that this is the mapping and not the data",
            )
            raise MappingError(name, [problem])
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
        raw = yaml.load(text, Loader=_MappingLoader)
    except yaml.YAMLError as exc:
        raise MappingError(name, [_yaml_problem(exc)]) from None
    return mapping_from_raw(raw, name)


def mapping_from_raw(raw: Any, name: str = "<mapping>") -> Mapping:
    """Validate a parsed mapping; raises MappingError listing every problem."""
    if surrogates := list(_surrogates(raw, "")):
        raise MappingError(name, surrogates)
    checker = _Checker()
    mapping = checker.mapping(raw, name)
    if checker.problems or mapping is None:
        raise MappingError(name, checker.problems)
    return mapping


class _MappingLoader(yaml.SafeLoader):
    """``yaml.safe_load`` without anchors and aliases: a mapping never needs them, and
    aliases of aliases expand exponentially (the "billion laughs")."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None,
                None,
                "anchors and aliases (&name, *name) are not allowed in a mapping file; "
                "write each value out",
                event.start_mark,
            )
        return super().compose_node(parent, index)


def _surrogates(raw: Any, path: str) -> Iterable[MappingProblem]:
    """Text holding lone UTF-16 surrogates ("\\ud83c\\udf63", JSON's way to write 🍣):
    no file, header or Metrix can take them."""
    if isinstance(raw, str):
        if any("\ud800" <= ch <= "\udfff" for ch in raw):
            yield MappingProblem(
                path,
                f"holds a UTF-16 surrogate escape ({ascii(raw)[1:-1][:60]}): write the "
                "character itself, or \\U0001F363 style escapes for characters beyond \\uFFFF",
            )
    elif isinstance(raw, dict):
        for key, value in raw.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and any("\ud800" <= ch <= "\udfff" for ch in key):
                yield MappingProblem(
                    path or "(top level)", f"a key holds a UTF-16 surrogate escape ({key!a})"
                )
                continue
            yield from _surrogates(value, where)
    elif isinstance(raw, list):
        for index, value in enumerate(raw):
            yield from _surrogates(value, f"{path}[{index}]")


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
        user_id = replace(user_id, on_invalid="fail_row")
        time = None if time is None else replace(time, on_invalid="fail_row")
        source = self.source(raw.get("source"))
        fields = self.fields(raw.get("fields"))
        custom = self.custom(raw.get("custom"))
        send_clear = self.privacy(raw.get("privacy"))
        hashed = self.hashed(raw.get("hashed"), fields, send_clear)
        unmapped = self.choice("unmapped", raw.get("unmapped", "ignore"), ("ignore", "custom"))
        # `empty: null` parses as YAML's null; that is the spelling the docs use.
        empty_raw = "null" if "empty" in raw and raw["empty"] is None else raw.get("empty", "omit")
        empty = self.choice("empty", empty_raw, ("omit", "null"))
        on_invalid = self.choice("on_invalid", raw.get("on_invalid", "fail_row"), ON_INVALID)
        fields = {k: _resolve(spec, on_invalid) for k, spec in fields.items()}
        custom = {k: _resolve(spec, on_invalid) for k, spec in custom.items()}
        self.extensions(fields, custom)
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
            on_invalid=on_invalid,
        )

    def extensions(self, fields: dict[str, FieldSpec], custom: dict[str, FieldSpec]) -> None:
        """An extension's attribute must not be one the mapping already fills."""
        seen: dict[str, str] = {}
        for spec in [*fields.values(), *custom.values()]:
            if not spec.extension:
                continue
            if spec.extension in custom or spec.extension in seen:
                other = (
                    f"custom.{spec.extension}" if spec.extension in custom else seen[spec.extension]
                )
                self.problem(
                    f"{spec.path}.extension",
                    f"custom attribute '{spec.extension}' is already filled by {other}; "
                    "choose another name",
                )
            seen[spec.extension] = f"{spec.path}.extension"

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

    def spec(self, path: str, raw: Any, kind: str) -> FieldSpec | None:
        if isinstance(raw, str | int | float) and not isinstance(raw, bool):
            raw = {"column": raw}
        if not isinstance(raw, dict):
            self.problem(
                path, f"expected a column name or a spec like {{column: ...}}, found {raw!r}"
            )
            return None
        self.known_keys(path, raw, kind)
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
        zone = raw.get("timezone")
        if zone is not None and (problem := timezone_problem(str(zone))):
            self.problem(f"{path}.timezone", problem)
        required = self.flag(f"{path}.required", raw.get("required", False))
        default = raw.get("default")
        phone_format, regions, extension = self.phone(path, raw, kind)
        return FieldSpec(
            path=path,
            kind=kind,
            column=column,
            value=raw.get("value"),
            has_value=has_value,
            formats=self.formats(f"{path}.format", raw.get("format"), kind),
            timezone=None if zone is None else str(zone),
            required=required or kind == "id",
            default=None if default is None else _text(default),
            values=self.values(path, raw.get("values", {}), kind),
            true_values=self.words(f"{path}.true_values", raw.get("true_values", [])),
            false_values=self.words(f"{path}.false_values", raw.get("false_values", [])),
            transform=self.transform(f"{path}.transform", raw.get("transform", [])),
            thousands=self.thousands(f"{path}.thousands", raw.get("thousands")),
            phone_format=phone_format,
            region=regions,
            extension=extension,
            on_invalid=self.on_invalid_of(path, raw, required),
        )

    def known_keys(self, path: str, raw: dict[Any, Any], kind: str) -> None:
        allowed = _KIND_KEYS[kind]
        for key in raw:
            if key not in allowed:
                near = _closest(str(key), allowed)
                what = "a custom attribute of type " + kind if path.startswith("custom.") else kind
                self.problem(
                    f"{path}.{key}",
                    f"not a setting of {what}{near}; allowed: {', '.join(sorted(allowed))}",
                )

    def flag(self, path: str, value: Any) -> bool:
        if not isinstance(value, bool):
            self.problem(path, f"expected true or false, found {value!r}")
            return False
        return value

    def transform(self, path: str, transform: Any) -> tuple[str, ...]:
        if isinstance(transform, str):
            transform = [transform]
        if not isinstance(transform, list) or any(t not in TRANSFORMS for t in transform):
            self.problem(path, f"found {transform!r}; expected a list of: {', '.join(TRANSFORMS)}")
            return ()
        return tuple(transform)

    def values(self, path: str, values: Any, kind: str) -> dict[str, Any]:
        if not isinstance(values, dict):
            self.problem(
                f"{path}.values", f"expected a map of cell text to value, found {values!r}"
            )
            return {}
        if kind == "gender":
            for cell, gender in values.items():
                if gender not in ("Male", "Female", "Other"):
                    self.problem(
                        f"{path}.values.{cell}",
                        f"found {gender!r}; a gender must be Male, Female or Other",
                    )
        return {_text(k): v for k, v in values.items()}

    def thousands(self, path: str, thousands: Any) -> str | None:
        if thousands is not None and (not isinstance(thousands, str) or len(thousands) != 1):
            self.problem(path, f"expected one character such as ',', found {thousands!r}")
            return None
        return thousands

    def phone(self, path: str, raw: dict[Any, Any], kind: str) -> tuple[str, tuple[str, ...], str]:
        """``phone_format``, the regions in order, and the extension's attribute key."""
        phone_format = str(raw.get("phone_format", "keep"))
        if phone_format not in PHONE_FORMATS:
            self.problem(
                f"{path}.phone_format",
                f"found {phone_format!r}; expected one of: {', '.join(PHONE_FORMATS)}",
            )
        raw_regions = raw.get("region")
        if raw_regions is not None:
            # libphonenumber loads only for mappings that name a region.
            from importer.core.phone import SUPPORTED_REGIONS
        listed = raw_regions if isinstance(raw_regions, list) else [raw_regions]
        regions: list[str] = []
        for index, region in enumerate([] if raw_regions is None else listed):
            where = f"{path}.region" + (f"[{index}]" if isinstance(raw_regions, list) else "")
            code = str(region).upper()
            if not isinstance(region, str) or code not in SUPPORTED_REGIONS:
                near = " (did you mean 'GB'?)" if code == "UK" else ""
                self.problem(
                    where,
                    f"unknown region {region!r}{near}; use a two-letter country code such as "
                    "IR, US or GB (numbers written with +country code need none)",
                )
            elif code in regions:
                self.problem(where, f"{code} is listed twice")
            else:
                regions.append(code)
        if kind == "phone" and phone_format != "keep" and raw_regions is None:
            self.problem(
                f"{path}.region",
                f"phone_format: {phone_format} needs the numbers' country, e.g. `region: IR` "
                "or a list tried in order, `region: [IR, US]`",
            )
        extension = raw.get("extension")
        if extension is not None and (not isinstance(extension, str) or not extension.strip()):
            self.problem(
                f"{path}.extension",
                f"expected the name of a custom attribute for extensions, found {extension!r}",
            )
            extension = None
        return phone_format, tuple(regions), extension or ""

    def on_invalid_of(self, path: str, raw: dict[Any, Any], required: bool) -> str:
        if "on_invalid" not in raw:
            return ""  # the mapping-wide setting applies
        choice = self.choice(f"{path}.on_invalid", raw["on_invalid"], ON_INVALID)
        if choice == "drop_field" and required:
            self.problem(
                f"{path}.on_invalid",
                "a required field cannot be dropped: use on_invalid: fail_row, or remove "
                "`required: true`",
            )
        return choice

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


def _resolve(spec: FieldSpec, mapping_wide: str) -> FieldSpec:
    """A field's own `on_invalid`, else the mapping's; a required field always fails."""
    if spec.on_invalid:
        return spec
    return replace(spec, on_invalid="fail_row" if spec.required else mapping_wide)


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
