"""Rows to Metrix ``user`` messages: the compiled mapping and deterministic message ids.

Pure: no files, no network. ``RowMapper`` is built once per input from a validated
mapping and the file's header; ``map_row`` is the hot path, so everything that can be
decided before the first row (column positions, converters, constants) is decided here.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from importer.core import convert as cv
from importer.core.config import FieldSpec, Mapping
from importer.core.headers import header_key
from importer.errors import ConversionError, MappingError, MappingProblem

if TYPE_CHECKING:  # libphonenumber loads only when a mapping has a phone field
    from importer.core.phone import Phone

# Columns the importer adds to a failure CSV; they are never data (see report.py).
REPORT_COLUMNS = ("_row", "_stage", "_error", "_source")
SOFT_MAX_ATTRIBUTES = 50
SOFT_MAX_BYTES = 512
# Fixed namespace for message ids: uuid5(NAMESPACE, customUserId + content).
MESSAGE_ID_NAMESPACE = bytes.fromhex("6f1b0c2e9a4d5b3c8e7f10a2b3c4d5e6")


@dataclass(frozen=True, slots=True)
class RowProblem:
    """Why one value of a row could not be produced."""

    path: str
    column: str | None
    value: str
    reason: str
    hint: str = ""

    @property
    def key(self) -> str:
        """A short, stable text used to count problems of the same kind."""
        return f"{self.column or self.path}: {self.reason}"

    def __str__(self) -> str:
        shown = f' ("{_shorten(self.value)}")' if self.value else ""
        text = f"{self.column or self.path}: {self.reason}{shown}"
        return f"{text}. {self.hint}" if self.hint else f"{text}."


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class MappedRow:
    """A valid row: the customUserId, the message ``time``, and the message's other
    content (standard fields, hashes, ``customAttributes``) in mapping order."""

    __slots__ = ("_body", "_content", "fields", "notes", "time", "user_id")

    def __init__(
        self,
        user_id: str,
        time: int,
        fields: dict[str, Any],
        content: str | None = None,
        notes: tuple[str, ...] = (),
    ) -> None:
        self.user_id = user_id
        self.time = time
        self.fields = fields
        self._content = content
        # Warnings about this row that did not stop it (a value left out under
        # `on_invalid: drop_field`, an ambiguous phone number), one text each.
        self.notes = notes
        self._body: bytes | None = None

    @classmethod
    def from_content(
        cls,
        user_id: str,
        time: int,
        content: str,
        notes: tuple[str, ...] = (),
        body: bytes | None = None,
    ) -> MappedRow:
        """A row mapped elsewhere (a worker process), carried as its content JSON and,
        when the worker built it, its request body."""
        row = cls(user_id, time, _LAZY, content, notes)
        row._body = body
        return row

    @property
    def body(self) -> bytes:
        """The exact request body (see ``encode_body``), built once."""
        if self._body is None:
            self._body = encode_body(self)[0]
        return self._body

    @property
    def message(self) -> dict[str, Any]:
        """The ``user`` message without its ``id``."""
        fields = json.loads(self.content) if self.fields is _LAZY else self.fields
        return {"type": "user", "time": self.time, **fields}

    @property
    def content(self) -> str:
        """``fields`` as JSON, serialised once and shared by the body, id and fingerprint."""
        if self._content is None:
            self._content = _dumps(self.fields)
        return self._content

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MappedRow) and (self.user_id, self.time, self.content) == (
            other.user_id,
            other.time,
            other.content,
        )

    def __repr__(self) -> str:
        return f"MappedRow({self.user_id!r}, {self.time!r}, {self.fields!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # By default the marker of a row carried as content JSON would come back as an
        # ordinary empty dict, and ``message`` would lose every field.
        fields = None if self.fields is _LAZY else self.fields
        return (_restored, (type(self), self.user_id, self.time, fields, self._content,
                            self.notes, self._body))  # fmt: skip


def _restored(
    kind: type[MappedRow],
    user_id: str,
    time: int,
    fields: dict[str, Any] | None,
    content: str | None,
    notes: tuple[str, ...],
    body: bytes | None,
) -> MappedRow:
    row = kind(user_id, time, _LAZY if fields is None else fields, content, notes)
    row._body = body
    return row


# Marks the fields of a row that arrived as content JSON (never mutated).
_LAZY: dict[str, Any] = {}


# A step of the compiled plan:
# (target key, cell index or -1, converter, required, default text, spec)
_Step = tuple[str, int, cv.Converter, bool, "str | None", FieldSpec]


class RowMapper:
    """A mapping compiled against one file's header."""

    def __init__(self, mapping: Mapping, header: Sequence[str], run_time_ms: int) -> None:
        self.mapping = mapping
        self.header = list(header)
        self.run_time_ms = run_time_ms
        self.warnings: Counter[str] = Counter()
        # Per row, reset by map_row: (warning key, text) notes and extension attributes.
        self._notes: list[tuple[str, str]] = []
        self._extras: dict[str, str] = {}
        self._positions = {name: i for i, name in enumerate(self.header)}
        problems: list[MappingProblem] = []
        self._check_columns(problems)
        if problems:
            raise MappingError(mapping.path, problems)
        self._zone = cv.get_timezone(mapping.source.timezone)
        self._null_empty = mapping.empty == "null"
        self._user_id = self._step("customUserId", mapping.user_id, problems)
        self._time = None if mapping.time is None else self._step("time", mapping.time, problems)
        self._fields = [self._step(k, s, problems) for k, s in mapping.fields.items()]
        custom = dict(mapping.custom)
        if mapping.unmapped == "custom":
            used = {column for _, column in mapping.column_specs()}
            for name in self.header:
                if name not in used and name not in custom and not _is_report_column(name):
                    custom[name] = FieldSpec(f"unmapped.{name}", "string", column=name)
        self._custom = [self._step(k, s, problems) for k, s in custom.items()]
        self._hashes = self._hash_plan(problems)
        if problems:
            raise MappingError(mapping.path, problems)
        self.map_row = self._compile()
        # Validation needs every check but none of the hashing, which cannot fail.
        self.check_row = self._compile(checks_only=True)
        if len(custom) > SOFT_MAX_ATTRIBUTES:
            self.warnings[
                f"{len(custom)} custom attributes per message; Metrix's SDKs cap events at "
                f"{SOFT_MAX_ATTRIBUTES} (sent anyway)"
            ] += 1

    # --- compiling --------------------------------------------------------------

    def _check_columns(self, problems: list[MappingProblem]) -> None:
        repeated = {name.split("#", 1)[0] for name in self.header if "#" in name}
        # A mapping that names 'phone#2' shows it knows 'phone' is repeated, so its
        # bare 'phone' means the first one; otherwise a bare name is ambiguous.
        acknowledged = {
            column.split("#", 1)[0] for _, column in self.mapping.column_specs() if "#" in column
        }
        repeated -= acknowledged
        loose: dict[str, list[str]] = {}
        for name in self.header:
            loose.setdefault(header_key(name), []).append(name)
        for path, column in self.mapping.column_specs():
            if column not in self._positions:
                # Legacy Persian exports write ي/ك where a mapping typed on a modern
                # keyboard has ی/ک; the same goes for case and stray spaces.
                candidates = loose.get(header_key(column), [])
                if len(candidates) == 1:
                    self._positions[column] = self._positions[candidates[0]]
                    continue
            elif column in repeated:
                places = [str(i + 1) for i, n in enumerate(self.header)
                          if n.split("#", 1)[0] == column]  # fmt: skip
                problems.append(
                    MappingProblem(
                        f"{path}.column",
                        f"the file has {len(places)} columns named '{column}' (columns "
                        f"{', '.join(places)}); say which with '{column}' (the first) or "
                        f"'{column}#2', '{column}#3'",
                    )
                )
                continue
            else:
                continue
            match = difflib.get_close_matches(column, self.header, n=1, cutoff=0.5)
            hint = f"; the closest header is '{match[0]}'" if match else ""
            problems.append(
                MappingProblem(
                    f"{path}.column",
                    f"the file has no column '{column}'{hint}. "
                    f"Its columns are: {', '.join(_visible(self.header))}",
                )
            )

    def _converter(self, key: str, spec: FieldSpec) -> cv.Converter:
        zone = cv.get_timezone(spec.timezone) if spec.timezone else self._zone
        if spec.kind != "phone":
            return cv.make_converter(spec, zone)
        notes, extras = self._notes, self._extras
        column = spec.column or spec.path
        keep_as = spec.extension
        dropped = (
            f"{column}: phone extensions left out (add `extension: <attribute name>` to "
            f"{spec.path} to keep them)"
        )

        def on_phone(text: str, phone: Phone) -> None:
            if phone.extension and keep_as:
                extras[keep_as] = phone.extension
            elif phone.extension:
                notes.append(
                    (dropped, f'{column}: extension {phone.extension} of "{text}" left out')
                )
            if phone.ambiguous:
                regions = " and ".join(phone.ambiguous)
                notes.append(
                    (
                        f"{column}: numbers valid in {regions}, read as {phone.ambiguous[0]}",
                        f'{column}: "{text}" is valid in {regions}; read as '
                        f"{phone.ambiguous[0]} ({phone.number})",
                    )
                )

        return cv.make_converter(spec, zone, on_phone)

    def _step(self, key: str, spec: FieldSpec, problems: list[MappingProblem]) -> _Step:
        convert = self._converter(key, spec)
        if spec.has_value:
            try:
                constant = convert(cv.clean(_cell_text(spec.value)))
            except ConversionError as exc:
                problems.append(
                    MappingProblem(
                        f"{spec.path}.value", f"{exc.reason}: {spec.value!r}. {exc.hint}"
                    )
                )
                constant = None
            return (key, -1, _constant(constant), spec.required, None, spec)
        if spec.default is not None:
            try:
                convert(cv.clean(spec.default))
            except ConversionError as exc:
                problems.append(
                    MappingProblem(f"{spec.path}.default", f"{exc.reason}: {spec.default!r}")
                )
        index = self._positions.get(spec.column or "", -1)
        return (key, index, convert, spec.required, spec.default, spec)

    def _hash_plan(
        self, problems: list[MappingProblem]
    ) -> list[tuple[str, int, str | None, FieldSpec | None]]:
        plan: list[tuple[str, int, str | None, FieldSpec | None]] = []
        for name, spec in self.mapping.hashed.items():
            if spec.from_field is not None:
                plan.append((name, -1, spec.from_field, self.mapping.fields.get(spec.from_field)))
            else:
                plan.append((name, self._positions[spec.column or ""], None, None))
        return plan

    def user_id_of(self, cells: Sequence[str]) -> str | None:
        """The customUserId a row would get, or None when its id cell is unusable.

        Called for every row by the duplicate check and --only-changed, so it reads the
        one cell directly rather than going through the row's whole plan.
        """
        _, index, convert, _, default, _ = self._user_id
        text = cells[index] if index >= 0 else ""
        if text:
            text = text.strip(_TRIM)
        if not text:
            if default is None:
                return None
            text = default
        try:
            value = convert(text)
        except ConversionError:
            return None
        return None if value is None else str(value)

    # --- the hot path -----------------------------------------------------------

    def _compile(
        self, checks_only: bool = False
    ) -> Callable[[Sequence[str]], MappedRow | list[RowProblem]]:
        """Generate ``map_row`` for this mapping and header.

        The hot path runs once per cell of millions of rows; a function written out
        for this mapping — column positions, converters and constants bound as names,
        no per-cell dispatch — is several times faster than interpreting the plan.
        """
        names: dict[str, Any] = {
            "W": _TRIM, "CE": ConversionError, "RP": RowProblem, "MappedRow": MappedRow,
            "sha256": hashlib.sha256, "N": self._notes, "X": self._extras,
            "check_size": self._check_size, "RUN_TIME": self.run_time_ms,
            "noted": self._noted, "dropped": _dropped,
        }  # fmt: skip
        lines = ["def map_row(cells):", "    problems = []", "    fields = {}", "    uid = None"]
        lines.append("    time = RUN_TIME")
        specs = [item[5] for item in [*self._fields, *self._custom]]
        notes = any(s.kind == "phone" or s.on_invalid == "drop_field" for s in specs)
        extras = any(s.extension for s in specs)
        if notes:
            lines.append("    N.clear()")
        if extras:
            lines.append("    X.clear()")

        count = 0
        for target, items in (("var", [self._user_id]), ("var", [self._time] if self._time else []),
                              ("fields", self._fields)):  # fmt: skip
            for item in items:
                self._emit_step(lines, names, target, item, count)
                count += 1
        if not checks_only:
            self._emit_hashes(lines, names)
        if not self.mapping.send_clear:
            lines += ["    fields.pop('email', None)", "    fields.pop('phoneNumber', None)"]
        if self._custom:
            lines.append("    attributes = {}")
            for item in self._custom:
                self._emit_step(lines, names, "attributes", item, count)
                count += 1
            lines += ["    if attributes:", "        fields['customAttributes'] = attributes"]
        if extras:
            lines += ["    if X:", "        fields.setdefault('customAttributes', {}).update(X)"]
        lines += ["    if problems:", "        return problems"]
        if notes:
            lines += ["    if N:", "        return MappedRow(uid, time, fields, None, noted(N))"]
        lines.append("    return MappedRow(uid, time, fields)")
        exec(compile("\n".join(lines), f"<map_row for {self.mapping.path}>", "exec"), names)
        function: Callable[[Sequence[str]], MappedRow | list[RowProblem]] = names["map_row"]
        return function

    def _emit_step(
        self, lines: list[str], names: dict[str, Any], target: str, item: _Step, number: int
    ) -> None:
        """The generated lines that fill one value (or report why it cannot be filled)."""
        key, index, convert, required, default, spec = item
        names[f"c{number}"], names[f"s{number}"] = convert, spec
        store = (
            f"{target}[{key!r}]"
            if target != "var"
            else ("uid" if key == "customUserId" else "time")
        )
        if index < 0:
            names[f"k{number}"] = convert("")
            lines.append(f"    {store} = k{number}")
            return
        checks_size = target == "attributes" and spec.kind == "string"
        lines.extend(
            [
                f"    t = cells[{index}]",
                "    if t:",
                "        t = t.strip(W)",
                "    if t:",
                "        try:",
                f"            {store} = v = c{number}(t)",
                "        except CE as e:",
                f"            N.append(dropped(s{number}, t, e))"
                if spec.on_invalid == "drop_field"
                else f"            problems.append(RP(s{number}.path, s{number}.column, t,"
                " e.reason, e.hint))",
            ]
        )
        if checks_size:
            lines.extend(
                [
                    "        else:",
                    f"            if len(v) > {SOFT_MAX_BYTES // 4}:",
                    f"                check_size({key!r}, v)",
                ]
            )
        if default is not None:
            names[f"d{number}"] = default
            lines.extend(["    else:", f"        {store} = c{number}(d{number})"])
        elif required:
            hint = (
                "Every row needs a customer id."
                if spec.kind == "id"
                else "This column is marked `required: true`; fill it in."
            )
            names[f"h{number}"] = hint
            lines.extend(
                [
                    "    else:",
                    f"        problems.append(RP(s{number}.path, s{number}.column, '',"
                    f" 'is empty', h{number}))",
                ]
            )
        elif self._null_empty and target != "var":
            lines.extend(["    else:", f"        {store} = None"])

    def _emit_hashes(self, lines: list[str], names: dict[str, Any]) -> None:
        for name, index, from_field, spec in self._hashes:
            if from_field is None:
                lines += [f"    t = cells[{index}].strip(W).lower()", "    if t:",
                          f"        fields[{name!r}] = t"]  # fmt: skip
                continue
            lines += [f"    v = fields.get({from_field!r})", "    if v:"]
            if from_field == "phoneNumber":
                names["canon"] = _phone_canonical(spec)
                lines.append("        v = canon(v)")
            lines.append(f"        fields[{name!r}] = sha256(v.encode()).hexdigest()")

    def _noted(self, notes: list[tuple[str, str]]) -> tuple[str, ...]:
        """Count a valid row's notes as warnings; their texts go with the row."""
        for key, _ in notes:
            self.warnings[key] += 1
        return tuple(text for _, text in notes)

    def _check_size(self, key: str, value: str) -> None:
        if len(value.encode()) > SOFT_MAX_BYTES:
            self.warnings[
                f"custom.{key}: values longer than {SOFT_MAX_BYTES} bytes (sent in full; "
                "Metrix's SDKs cap values at 512 bytes)"
            ] += 1


_TRIM = cv.WHITESPACE


def _dropped(spec: FieldSpec, text: str, error: ConversionError) -> tuple[str, str]:
    """The note for a value left out under ``on_invalid: drop_field``."""
    column = spec.column or spec.path
    return (
        f"{column}: {error.reason}; left out of {spec.path} (on_invalid: drop_field)",
        f'{column}: {error.reason} ("{_shorten(text)}"); left out (on_invalid: drop_field)',
    )


def _cell_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _phone_canonical(spec: FieldSpec | None) -> Callable[[str], str]:
    """The E.164 form of a normalised phone value, for hashing.

    ``e164`` values are E.164 already, and so are ``national`` ones that start with
    ``+`` (numbers of another country than the first region's); a national number of
    the first region, and a ``keep`` value, are read again.
    """
    from importer.core.phone import canonical_phone_for_hash

    regions = spec.region if spec is not None else ()
    if spec is not None and spec.phone_format == "e164":
        return _identity
    if spec is not None and spec.phone_format == "national" and regions:
        first = regions[:1]
        iranian = first == ("IR",)

        def national_to_e164(value: str) -> str:
            if value.startswith("+"):
                return value
            if iranian and value.startswith("0"):
                return "+98" + value[1:]
            return canonical_phone_for_hash(value, first)

        return national_to_e164
    return lambda value: canonical_phone_for_hash(value, regions)


def _identity(text: str) -> str:
    return text


def _constant(value: Any) -> cv.Converter:
    return lambda _text: value


def _is_report_column(name: str) -> bool:
    return name in REPORT_COLUMNS


def _visible(header: Sequence[str], limit: int = 30) -> list[str]:
    shown = list(header[:limit])
    if len(header) > limit:
        shown.append(f"… ({len(header) - limit} more)")
    return shown


# --- encoding ----------------------------------------------------------------------

# Not sort_keys: the mapping fixes the key order, and sorting costs a third of the time.
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def message_id(user_id: str, time: int, content: str) -> str:
    """UUIDv5 of the customUserId, the time and the content (identical to ``uuid.uuid5``).

    Deterministic, so a retry, a resumed run or a re-run sends the same id and Metrix
    drops the duplicate.
    """
    name = f"{user_id}\x1f{time}\x1f{content}".encode()
    digest = bytearray(hashlib.sha1(MESSAGE_ID_NAMESPACE + name).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def encode_body(row: MappedRow) -> tuple[bytes, str]:
    """The exact request body for a mapped row, and its message id.

    The content is serialised once (in mapping order) and spliced into the envelope:
    ``{"customUserId": ..., "messages": [{"type": "user", "id": ..., "time": ..., ...}]}``.
    """
    content = row.content
    mid = message_id(row.user_id, row.time, content)
    rest = "}" if content == "{}" else "," + content[1:]
    body = (
        f'{{"customUserId":{_dumps(row.user_id)},"messages":'
        f'[{{"type":"user","id":"{mid}","time":{row.time}{rest}]}}'
    )
    return body.encode(), mid


def content_fingerprint(row: MappedRow) -> bytes:
    """A digest of what a user's profile says, ignoring ``time`` (for --only-changed)."""
    return hashlib.blake2b(f"{row.user_id}\x1f{row.content}".encode(), digest_size=8).digest()
