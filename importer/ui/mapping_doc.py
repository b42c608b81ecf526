"""The mapping as the page edits it: one choice per source column, and back to YAML.

The page never converts a cell itself; it only writes the mapping text that the CLI
would read (checked with ``core.config.parse_mapping``), so a mapping saved here runs
unchanged with ``metrix-import validate`` and ``run``. Entries that name no column
(constants, ``hashed: {from: ...}``) and the mapping's other settings are kept as
loaded. Comments from a draft are kept on the lines the user did not change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import yaml

from importer.core.config import CUSTOM_TYPES, HASHED_FIELDS, STANDARD_FIELDS

IGNORE = "ignore"
USER_ID = "user_id"
TIME = "time"
CUSTOM = "custom"
DATE_FIELDS = {"birthday"}
PHONE_FORMATS = ("keep", "national", "e164")
FORMAT_EXAMPLES = (
    "%d/%m/%Y", "%m/%d/%Y", "%Y-%m-%d", "%Y/%m/%d", "%d.%m.%Y", "%Y-%m-%d %H:%M:%S",
    "%d/%m/%Y %H:%M", "jalali:%Y/%m/%d", "jalali:%Y-%m-%d", "iso", "epoch_s", "epoch_ms",
    "excel",
)  # fmt: skip


def targets() -> list[tuple[str, str]]:
    """Every target a column can have: (value, label)."""
    out = [(IGNORE, "ignore"), (USER_ID, "customer id (customUserId)"), (TIME, "message time")]
    out += [(f"field:{name}", name) for name in STANDARD_FIELDS]
    out += [(f"hashed:{name}", f"{name} (ready-made hashes)") for name in HASHED_FIELDS]
    out.append((CUSTOM, "custom attribute"))
    return out


@dataclass
class Choice:
    """What one source column becomes."""

    column: str
    target: str = IGNORE
    key: str = ""  # custom attribute key
    type: str = "string"  # custom type
    format: str = ""  # date format, or phone_format for phoneNumber
    extra: dict[str, Any] = field(default_factory=dict)  # other spec keys, kept as loaded
    region: str = ""  # phoneNumber: the numbers' countries, "IR" or "IR, US" (in order)
    loaded_as: str = ""  # the target it was loaded with (extra belongs to that one)
    order: int = 1 << 30  # position in the loaded file (message keys follow it)
    comment: str = ""
    check: str = ""

    @property
    def path(self) -> str:
        """The mapping path this choice writes ("" when ignored)."""
        if self.target in (USER_ID, TIME):
            return self.target
        if self.target.startswith("field:"):
            return "fields." + self.target[6:]
        if self.target.startswith("hashed:"):
            return "hashed." + self.target[7:]
        if self.target == CUSTOM:
            return f"custom.{self.key}"
        return ""

    @property
    def takes_format(self) -> bool:
        return (
            self.target == TIME
            or self.target == "field:birthday"
            or (self.target == CUSTOM and self.type in ("date", "datetime"))
        )

    @property
    def is_phone(self) -> bool:
        return self.target == "field:phoneNumber"


@dataclass
class MappingDoc:
    """A mapping being edited: the column choices plus everything else, as loaded."""

    columns: list[Choice]
    rest: dict[str, Any]  # top-level sections without column entries, as loaded
    others: dict[str, dict[str, Any]]  # per section: entries naming no column
    title: str = ""

    def choice(self, column: str) -> Choice | None:
        return next((c for c in self.columns if c.column == column), None)


_SECTIONS = ("fields", "hashed", "custom")


def from_yaml(
    text: str, header: list[str], title: str = "", checks: dict[str, str] | None = None
) -> MappingDoc:
    """Read a mapping's text (a draft, or a file the user loads) against ``header``;
    ``checks`` are a draft's CHECK notes by path (they may contain "; ")."""
    raw = yaml.safe_load(text) or {}
    if not isinstance(raw, dict):
        raw = {}
    comments = _comments(text, checks or {})
    choices = {name: Choice(name) for name in header}
    loaded: list[str] = []
    others: dict[str, dict[str, Any]] = {name: {} for name in _SECTIONS}
    rest = {k: v for k, v in raw.items() if k not in (USER_ID, TIME, *_SECTIONS)}

    def take(target: str, path: str, spec: Any, key: str = "") -> bool:
        column, extra = _split(spec)
        choice = choices.get(column or "")
        if choice is None or choice.target != IGNORE:
            return False
        choice.target, choice.loaded_as, choice.key = target, target, key
        choice.order = len(loaded)
        loaded.append(column or "")
        choice.comment, choice.check = comments.get(path, ("", ""))
        choice.type = str(extra.pop("type", "string"))
        if target == "field:phoneNumber":
            choice.format = str(extra.pop("phone_format", "keep"))
            regions = extra.pop("region", "")
            choice.region = (
                ", ".join(map(str, regions)) if isinstance(regions, list) else str(regions)
            )
        elif "format" in extra and isinstance(extra["format"], str):
            choice.format = extra.pop("format")
        choice.extra = extra
        return True

    for name in (USER_ID, TIME):
        if raw.get(name) is not None and not take(name, name, raw[name]):
            rest[name] = raw[name]
    for section in _SECTIONS:
        entries = raw.get(section) or {}
        if not isinstance(entries, dict):
            continue
        for key, spec in entries.items():
            prefix = {"fields": "field:", "hashed": "hashed:"}.get(section)
            target = f"{prefix}{key}" if prefix else CUSTOM
            if not take(target, f"{section}.{key}", spec, str(key) if section == CUSTOM else ""):
                others[section][key] = spec
    return MappingDoc([choices[name] for name in header], rest, others, title)


def edit(doc: MappingDoc, column: str, **changes: Any) -> MappingDoc:
    """``doc`` with one column's choice changed (target, key, type, format)."""
    columns = []
    for choice in doc.columns:
        if choice.column == column:
            new = replace(choice, **changes)
            if new.target == CUSTOM and not new.key:
                new.key = _key_for(column, {c.key for c in doc.columns if c.target == CUSTOM})
            if new.target != choice.target or new.type != choice.type:
                new.comment = new.check = ""
                if new.is_phone and not choice.is_phone:
                    new.format = "keep"
                elif not new.takes_format:
                    new.format = ""
            choice = new
        columns.append(choice)
    return replace(doc, columns=columns)


def to_yaml(doc: MappingDoc, header_row: int, reader: dict[str, Any] | None = None) -> str:
    """The mapping file: commented like init-mapping's drafts, loadable by the CLI."""
    lines = [f"# {_comment_safe(line)}" for line in doc.title.splitlines()]
    entries: dict[str, list[tuple[str, str]]] = {
        USER_ID: [],
        TIME: [],
        **{s: [] for s in _SECTIONS},
    }
    # Message keys follow the mapping's order (and so do message ids): keep the loaded
    # order, and put new entries after it in the file's column order.
    ordered = sorted(enumerate(doc.columns), key=lambda pair: (pair[1].order, pair[0]))
    for _, choice in ordered:
        if choice.target == IGNORE:
            continue
        section = choice.path.split(".", 1)[0]
        name = choice.path.split(".", 1)[1] if "." in choice.path else ""
        entries[section].append((name, _line(name, _spec(choice), choice)))
    for name in (USER_ID, TIME):
        if entries[name]:
            lines.append(f"{name}: {entries[name][0][1]}")
        elif name in doc.rest:
            lines.append(f"{name}: {_flow(doc.rest[name])}")
    source = dict(doc.rest.get("source") or {})
    source["header_row"] = header_row
    for key, value in (reader or {}).items():
        if value in (None, "", "auto"):
            source.pop(key, None)
        else:
            source[key] = value
    lines.append("source:")
    lines += [f"  {_key(k)}: {_flow(v)}" for k, v in source.items()]
    for section in _SECTIONS:
        kept = [f"  {_key(k)}: {_flow(v)}" for k, v in doc.others[section].items()]
        written = [f"  {_key(n)}: {text}" for n, text in entries[section]]
        if kept or written:
            lines.append(f"{section}:")
            lines += written + kept
    for key, value in doc.rest.items():
        if key not in ("source", USER_ID, TIME):
            lines.append(f"{_key(key)}: {_flow(value)}")
    if "unmapped" not in doc.rest:
        lines.append("unmapped: ignore")
    return "\n".join(lines) + "\n"


def _spec(choice: Choice) -> Any:
    spec: dict[str, Any] = {"column": choice.column}
    if choice.target == CUSTOM:
        spec["type"] = choice.type
    if choice.is_phone and choice.format:
        spec["phone_format"] = choice.format
    if choice.is_phone and choice.region:
        regions = [part.strip() for part in choice.region.split(",") if part.strip()]
        spec["region"] = regions[0] if len(regions) == 1 else regions  # tried in order
    elif choice.takes_format and choice.format:
        spec["format"] = choice.format
    if choice.target == choice.loaded_as:
        spec.update({k: v for k, v in choice.extra.items() if k not in spec})
    if choice.target == USER_ID and len(spec) == 1:
        return choice.column
    return spec


def _line(name: str, spec: Any, choice: Choice) -> str:
    text = _flow(spec)
    notes = [f"CHECK: {choice.check}"] if choice.check else []
    if choice.comment:
        notes.append(choice.comment)
    return f"{text}  # {_comment_safe('; '.join(notes))}" if notes else text


def _flow(value: Any) -> str:
    dumped: str = yaml.safe_dump(
        value, default_flow_style=True, allow_unicode=True, sort_keys=False, width=10**9
    )
    return dumped.strip().removesuffix("\n...").removesuffix("...").strip()


def _key(key: Any) -> str:
    return _flow(str(key))


def _comment_safe(text: str) -> str:
    return re.sub(r"[\r\n\x00-\x1f]", " ", text)


def _split(spec: Any) -> tuple[str | None, dict[str, Any]]:
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, dict) and isinstance(spec.get("column"), str):
        extra = dict(spec)
        return extra.pop("column"), extra
    return None, {}


def _key_for(column: str, used: set[str]) -> str:
    base = re.sub(r"[^\w]+", "_", column).strip("_").lower() or "attribute"
    key, n = base, 2
    while key in used:
        key, n = f"{base}_{n}", n + 1
    return key


def _comments(text: str, checks: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Per mapping path, the (comment, CHECK text) a draft wrote on its line."""
    found: dict[str, tuple[str, str]] = {}
    section = ""
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indented = line.startswith(" ")
        if not indented:
            section = line.split(":", 1)[0]
        cut = line.rfind("  # ")
        while cut > 0:
            try:
                parsed = yaml.safe_load(line[:cut])
            except yaml.YAMLError:
                parsed = None
            if isinstance(parsed, dict) and len(parsed) == 1:
                break
            cut = line.rfind("  # ", 0, cut)
        if cut <= 0:
            continue
        key = str(next(iter(yaml.safe_load(line[:cut]))))
        path = f"{section}.{key}" if indented else key
        comment = line[cut + 4 :].strip()
        check = ""
        known = checks.get(path)
        if known and comment.startswith(f"CHECK: {known}"):
            check, comment = known, comment[len(known) + 7 :].removeprefix(";").strip()
        elif comment.startswith("CHECK: "):
            check, _, comment = comment[7:].partition("; ")
        found[path] = (comment, check)
    return found


__all__ = [
    "CUSTOM_TYPES",
    "FORMAT_EXAMPLES",
    "PHONE_FORMATS",
    "Choice",
    "MappingDoc",
    "edit",
    "from_yaml",
    "targets",
    "to_yaml",
]
