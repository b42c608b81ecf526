"""Typed values (DataFrames, Arrow, Parquet, JSON) as the text the mapping reads.

Every input kind ends as rows of text cells, so the one mapping and converter path runs
unchanged and there is no second implementation of any conversion. Each value becomes
the exact text a CSV or Excel export of it would hold, one documented way:

- missing (``None``, ``NaN``, ``NaT``, ``pd.NA``) → an empty cell;
- bool → ``true`` / ``false``; integers (nullable ones too) → their digits;
- float → its digits without ``.0`` when it is a whole number below 10¹⁶ (pandas turns
  an integer column with one missing value into floats: customer id 12 must stay
  ``12``, as an Excel number does), else the shortest text that reads back the same;
- Decimal → its digits (at the column's scale); date → ``YYYY-MM-DD``;
- date-time with a zone → ISO 8601 with its offset (that instant); without a zone →
  ISO 8601 without offset, read in the mapping's time zone;
- nested values (objects, lists) → JSON, for ``type: json`` attributes.

Arrow columns are converted column-wise with pyarrow compute, a batch at a time.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from collections.abc import Callable
from typing import Any

from importer.edges.extras import require

# Whole floats below this print as integers (beyond it a float no longer holds every
# integer exactly, and Excel's own text switches to an exponent).
_INTEGRAL_LIMIT = 1e16


def float_text(value: float) -> str:
    """A float as text: ``12`` for 12.0, else the shortest round-trip text."""
    if math.isnan(value):
        return ""
    if value.is_integer() and abs(value) < _INTEGRAL_LIMIT:
        return str(int(value))
    return repr(value)


def _datetime_text(value: dt.datetime) -> str:
    return value.isoformat()


def _decimal_text(value: decimal.Decimal) -> str:
    return format(value, "f") if value.is_finite() else ""


def _json_default(value: Any) -> Any:
    text = value_text(value)
    return text if text != "" else None


def nested_text(value: Any) -> str:
    """An object or list as JSON text (non-ASCII kept as written)."""
    return json.dumps(value, ensure_ascii=False, default=_json_default)


_BY_TYPE: dict[type, Callable[[Any], str]] = {
    str: str,
    bool: lambda value: "true" if value else "false",
    int: str,
    float: float_text,
    decimal.Decimal: _decimal_text,
    dt.datetime: _datetime_text,
    dt.date: dt.date.isoformat,
    dt.time: dt.time.isoformat,
    dict: nested_text,
    list: nested_text,
    tuple: nested_text,
}


def value_text(value: Any) -> str:
    """One Python value as cell text (see the module's rules)."""
    convert = _BY_TYPE.get(type(value))
    if convert is not None:
        return convert(value)
    if value is None:
        return ""
    kind = type(value).__name__
    if kind in ("NAType", "NaTType"):  # pandas' missing markers
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dt.datetime):  # pandas.Timestamp among others
        return _datetime_text(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return float_text(value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, (dict, list, tuple)):
        return nested_text(value)
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        plain = item()
        if type(plain) is not type(value):
            return value_text(plain)
    if hasattr(value, "tolist"):  # numpy arrays inside object columns
        return nested_text(value.tolist())
    return str(value)


# --- Arrow ---------------------------------------------------------------------------


def arrow_text(column: Any) -> list[str]:
    """An Arrow array (or chunked array) as one text cell per value."""
    return arrow_text_array(column).to_pylist()  # type: ignore[no-any-return]


def arrow_text_array(column: Any) -> Any:
    """An Arrow array as an Arrow string array of cell texts (no nulls)."""
    pa = require("pyarrow", "parquet")
    pc = require("pyarrow.compute", "parquet")
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = kind.value_type
    if pa.types.is_null(kind):
        return pa.array([""] * len(column), pa.string())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        text = column
    elif pa.types.is_floating(kind):
        return _float_column(column, pa, pc)
    elif pa.types.is_timestamp(kind):
        text = _timestamp_column(column, pa, pc)
    elif (
        pa.types.is_boolean(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_date(kind)
        or pa.types.is_time(kind)
        or (hasattr(pa.types, "is_string_view") and pa.types.is_string_view(kind))
    ):
        text = pc.cast(column, pa.string())
    else:  # nested, binary, durations...: rare, value by value
        return pa.array([value_text(value) for value in column.to_pylist()], pa.string())
    if text.null_count:
        text = pc.fill_null(text, "")
    return text


def _float_column(column: Any, pa: Any, pc: Any) -> Any:
    finite = pc.is_finite(column)
    whole = pc.and_(pc.equal(pc.floor(column), column), pc.less(pc.abs(column), _INTEGRAL_LIMIT))
    if pc.all(pc.or_kleene(pc.invert(finite), whole)).as_py() is not False:
        # The common case (ids and counts that became floats): whole numbers and gaps.
        present = pc.if_else(finite, column, None)
        return pc.fill_null(pc.cast(pc.cast(present, pa.int64()), pa.string()), "")
    texts = ["" if value is None else float_text(value) for value in column.to_pylist()]
    return pa.array(texts, pa.string())


def _timestamp_column(column: Any, pa: Any, pc: Any) -> Any:
    kind = column.type
    micro = column.cast(pa.timestamp("us", kind.tz), safe=False)
    if kind.tz is None:
        text = pc.strftime(micro, format="%Y-%m-%dT%H:%M:%S")
        return pc.replace_substring_regex(text, pattern=r"\.000000$", replacement="")
    try:
        text = pc.strftime(micro, format="%Y-%m-%dT%H:%M:%S%z")
    except pa.ArrowInvalid:  # no time zone database for this zone here: the same instant
        utc = micro.cast(pa.timestamp("us", "UTC"))
        text = pc.strftime(utc, format="%Y-%m-%dT%H:%M:%S%z")
    # "…05.000000+0330" → "…05+03:30": the text Python's isoformat() writes.
    text = pc.replace_substring_regex(text, pattern=r"\.000000([+-])", replacement=r"\1")
    return pc.replace_substring_regex(text, pattern=r"([+-]\d\d)(\d\d)$", replacement=r"\1:\2")
