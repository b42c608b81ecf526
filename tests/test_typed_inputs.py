"""Typed inputs: every kind gives the same messages as the CSV of the same data."""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

import importer
from importer.edges.tables import table_input
from importer.edges.typed import arrow_text, float_text, value_text
from importer.errors import MappingError, SourceError
from tests.cli_helpers import SAMPLE_CSV, SAMPLE_MAPPING, cli

TEHRAN = dt.timezone(dt.timedelta(hours=3, minutes=30))

MAPPING = {
    "user_id": "id",
    "time": {"column": "updated"},
    "source": {"timezone": "Asia/Tehran"},
    "fields": {"firstName": "name", "birthday": {"column": "born"}},
    "custom": {
        "orders": {"column": "orders", "type": "int"},
        "spent": {"column": "spent", "type": "float"},
        "price": {"column": "price", "type": "float"},
        "vip": {"column": "vip", "type": "bool"},
        "seen": {"column": "seen", "type": "datetime"},
        "prefs": {"column": "prefs", "type": "json"},
        "code": "code",
    },
}

ROWS: list[dict[str, Any]] = [
    {
        "id": "u1",
        "updated": dt.datetime(2024, 3, 1, 10, 0, tzinfo=TEHRAN),  # zoned: that instant
        "name": "سارا",
        "born": dt.date(1990, 1, 31),
        "orders": 12,
        "spent": 12.5,
        "price": decimal.Decimal("19.99"),
        "vip": True,
        "seen": dt.datetime(2024, 3, 1, 8, 30, 15, 250000),  # naive: Tehran wall clock
        "prefs": {"lang": "fa", "tags": ["a", "ب"]},
        "code": "007",
    },
    {
        "id": "u2",
        "updated": dt.datetime(2024, 3, 2, 0, 0, tzinfo=dt.UTC),
        "name": "Neda",
        "born": None,
        "orders": None,  # nullable int: omitted, never 12.0 elsewhere
        "spent": None,
        "price": None,
        "vip": False,
        "seen": None,  # NaT
        "prefs": None,
        "code": None,
    },
]

EXPECTED_U1 = {
    "firstName": "سارا",
    "birthday": 633744000000,  # 1990-01-31, midnight UTC
    "customAttributes": {
        "orders": 12,
        "spent": 12.5,
        "price": 19.99,
        "vip": True,
        "seen": "2024-03-01T05:00:15.250Z",  # 08:30:15.25 Tehran
        "prefs": {"lang": "fa", "tags": ["a", "ب"]},
        "code": "007",
    },
}


def _frame() -> pd.DataFrame:
    frame = pd.DataFrame(ROWS)
    frame["updated"] = pd.to_datetime(frame["updated"], utc=True).dt.tz_convert("Asia/Tehran")
    frame["seen"] = pd.to_datetime(frame["seen"])
    frame["born"] = pd.to_datetime(frame["born"]).dt.date
    frame["orders"] = frame["orders"].astype("Int64")
    frame["vip"] = frame["vip"].astype("boolean")
    frame.index = pd.Index(["x", "y"], name="ignored")
    return frame


def _bodies(data: Any) -> list[dict[str, Any]]:
    return importer.preview(data, MAPPING, rows=10)


def _messages(data: Any) -> dict[str, dict[str, Any]]:
    return {body["customUserId"]: body["messages"][0] for body in _bodies(data)}


def _check(messages: dict[str, dict[str, Any]]) -> None:
    first = messages["u1"]
    assert first["time"] == 1709274600000  # 2024-03-01T10:00+03:30
    for key, value in EXPECTED_U1.items():
        assert first[key] == value, key
    second = messages["u2"]
    assert second["time"] == 1709337600000
    assert second["customAttributes"] == {"vip": False}
    assert "birthday" not in second


def test_pandas_frame_converts_types_by_the_rules() -> None:
    _check(_messages(_frame()))


def _generator() -> Iterator[dict[str, Any]]:
    yield from ROWS


def _arrow() -> pa.Table:
    return pa.Table.from_pandas(_frame(), preserve_index=False)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ROWS,
        _generator,
        _arrow,
        lambda: pa.RecordBatchReader.from_batches(_arrow().schema, _arrow().to_batches()),
        lambda: pl.DataFrame(_arrow().drop(["prefs"])).with_columns(
            pl.Series("prefs", [json.dumps(ROWS[0]["prefs"], ensure_ascii=False), None])
        ),
    ],
    ids=["list-of-dicts", "generator", "arrow-table", "record-batch-reader", "polars"],
)
def test_every_in_memory_kind_gives_the_same_messages(make: Any) -> None:
    assert _messages(make()) == _messages(_frame())


def test_parquet_and_jsonl_files_give_the_same_messages(tmp_path: Path) -> None:
    table = _arrow()
    parquet = tmp_path / "users.parquet"
    pq.write_table(table, parquet, row_group_size=1)
    jsonl = tmp_path / "users.jsonl.gz"
    with gzip.open(jsonl, "wt", encoding="utf-8") as out:
        for row in ROWS:
            out.write(json.dumps(row, default=value_text, ensure_ascii=False) + "\n")
    expected = _messages(_frame())
    assert _messages(str(parquet)) == expected
    assert _messages(str(jsonl)) == expected


def test_csv_of_the_canonical_text_gives_the_same_messages(tmp_path: Path) -> None:
    """The canonical text is exactly what the CSV path reads."""
    source = table_input(_frame()).open()
    csv_path = tmp_path / "users.csv"
    lines = [",".join(source.header)]
    for _, cells, _ in source.records:
        lines.append(",".join('"' + cell.replace('"', '""') + '"' for cell in cells))
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert _messages(str(csv_path)) == _messages(_frame())


def test_the_index_is_ignored_unless_the_mapping_names_it() -> None:
    frame = pd.DataFrame({"n": [1, 2]}, index=pd.Index(["a", "b"], name="customer"))
    bodies = importer.preview(frame, {"user_id": "customer", "custom": {"n": "n"}})
    assert [b["customUserId"] for b in bodies] == ["a", "b"]
    with pytest.raises(MappingError):
        importer.preview(frame.reset_index(drop=True), {"user_id": "customer"})


def test_the_canonical_text_of_each_kind() -> None:
    assert value_text(None) == value_text(float("nan")) == value_text(pd.NaT) == ""
    assert value_text(pd.NA) == ""
    assert value_text(12.0) == "12" and value_text(0.1) == "0.1" and value_text(1e20) == "1e+20"
    assert value_text(True) == "true" and value_text(decimal.Decimal("1.50")) == "1.50"
    assert (
        value_text(dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=TEHRAN)) == "2024-01-02T03:04:05+03:30"
    )
    assert value_text({"a": "ب"}) == '{"a": "ب"}'
    column = pa.array([1.0, None, 2.0, float("nan")])
    assert arrow_text(column) == ["1", "", "2", ""]
    ints = pa.array(pd.array([12, None], dtype="Int64"))
    assert arrow_text(ints) == ["12", ""]


@given(st.lists(st.floats(allow_infinity=False), min_size=1, max_size=20))
def test_arrow_floats_are_the_python_floats_text(values: list[float]) -> None:
    assert arrow_text(pa.array(values, pa.float64())) == [float_text(v) for v in values]


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_float_text_reads_back_as_the_same_float(value: float) -> None:
    assert float(float_text(value)) == value or (value == 0 and math.copysign(1, value) < 0)


@given(
    st.lists(
        st.datetimes(
            min_value=dt.datetime(1900, 1, 1), timezones=st.sampled_from([None, dt.UTC, TEHRAN])
        ),
        min_size=1,
        max_size=10,
    )
)
def test_arrow_timestamps_are_the_python_datetimes_text(values: list[dt.datetime]) -> None:
    zones = {value.tzinfo for value in values}
    if len(zones) > 1:
        values = [value.replace(tzinfo=None) for value in values]
    zone = values[0].tzinfo
    kind = pa.timestamp("us", None if zone is None else ("+03:30" if zone is TEHRAN else "UTC"))
    expected = [value_text(value) for value in values]
    assert arrow_text(pa.array(values, kind)) == expected


def test_a_missing_extra_names_the_pip_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from importer.errors import MissingExtra

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingExtra, match=r"pip install 'metrix-importer\[parquet\]'"):
        arrow_text([1])
    monkeypatch.setitem(sys.modules, "s3fs", None)
    from importer.edges import remote

    with pytest.raises(MissingExtra, match=r"metrix-importer\[s3\]"):
        remote.filesystem("s3://bucket/x.parquet")


@pytest.mark.e2e
def test_the_cli_reads_parquet_and_jsonl_and_drafts_mappings(tmp_path: Path) -> None:
    frame = pd.read_csv(SAMPLE_CSV, dtype=str, keep_default_na=False)
    parquet = tmp_path / "customers.parquet"
    frame.to_parquet(parquet)
    jsonl = tmp_path / "customers.jsonl"
    frame.to_json(jsonl, orient="records", lines=True, force_ascii=False)
    expected = cli("preview", SAMPLE_CSV, "-m", SAMPLE_MAPPING, "--rows", "1000")
    for path in (parquet, jsonl):
        shown = cli("preview", path, "-m", SAMPLE_MAPPING, "--rows", "1000")
        assert shown.returncode == 0, shown.stderr
        assert _without_times(shown.stdout) == _without_times(expected.stdout)
        drafted = cli("init-mapping", path)
        assert drafted.returncode == 0, drafted.stderr
        assert 'user_id: "customer_id"' in drafted.stdout


def _without_times(lines: str) -> list[Any]:
    """Bodies with the run-dependent parts (a missing time is the run's start) removed."""
    bodies = []
    for line in lines.splitlines():
        body = json.loads(line)
        for message in body["messages"]:
            message.pop("id")
            message.pop("time")
        bodies.append(body)
    return bodies


def test_jsonl_lines_that_cannot_be_read_are_failure_rows(tmp_path: Path) -> None:
    path = tmp_path / "users.ndjson"
    path.write_bytes(
        b'{"id": "u1", "n": 1}\n'
        b"\n"
        b'{"id": "u2", "n": 2.0\n'
        b'["not", "an", "object"]\n'
        b'{"id": "u3", "late": {"k": null}}\n'
        b'{"id": "u4", "n": "\xff"}\n'
    )
    failures = tmp_path / "f.csv"
    mapping = {"user_id": "id", "custom": {"n": {"column": "n", "type": "int"}, "late": "late"}}
    report = importer.validate(str(path), mapping, failures=failures)
    assert (report.rows_total, report.rows_valid, report.blank_rows) == (5, 2, 1)
    rows = importer.failures_frame(failures)
    assert list(rows["_row"]) == ["3", "4", "6"]
    assert list(rows["_stage"]) == ["read"] * 3
    assert "line 3: is not valid JSON" in rows["_error"][0]
    assert "line 4: is a JSON list, not an object" in rows["_error"][1]
    assert "line 6: has bytes that are not valid UTF-8" in rows["_error"][2]
    bodies = importer.preview(str(path), mapping)
    assert bodies[1]["messages"][0]["customAttributes"] == {"late": '{"k": null}'}


def test_unreadable_typed_inputs_are_input_errors(tmp_path: Path) -> None:
    broken = tmp_path / "cut.parquet"
    broken.write_bytes(b"PAR1 this is no parquet file")
    with pytest.raises(SourceError, match="not a readable Parquet file") as caught:
        importer.validate(str(broken), MAPPING)
    assert caught.value.exit_code == 3
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(SourceError, match="no JSON objects"):
        importer.validate(str(empty), MAPPING)
    with pytest.raises(SourceError, match="collect"):
        importer.validate(pl.DataFrame({"id": ["a"]}).lazy(), MAPPING)
    with pytest.raises(SourceError, match="list of dicts"):
        importer.validate({"id": "a"}, MAPPING)
    with pytest.raises(SourceError, match="item 2 is a str"):
        importer.validate([{"id": "a"}, "b"], MAPPING)


@given(
    st.one_of(
        st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=1),
        st.lists(st.one_of(st.none(), st.booleans()), min_size=1),
        st.lists(st.one_of(st.none(), st.dates()), min_size=1),
        st.lists(st.one_of(st.none(), st.text()), min_size=1),
    )
)
def test_arrow_columns_are_the_python_values_text(values: list[Any]) -> None:
    """The column-wise Arrow path and the value-by-value path agree on every value."""
    assert arrow_text(pa.array(values)) == [value_text(v) for v in values]
