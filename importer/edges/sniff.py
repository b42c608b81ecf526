"""What a file is, by its first bytes: a file is read by what it is, not by its name.

HTML pages saved as ``.xls`` or ``.csv`` (a common "export" of web systems), PDFs,
images, archives and programs are refused with what was found instead of being read as
one-column CSV (where ``<!DOCTYPE html>`` would become a customer id).
"""

from __future__ import annotations

import codecs

from importer.errors import SourceError

_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"BM", ""),  # checked below: too short a marker to trust alone
    (b"{\\rtf", "an RTF document"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\x7fELF", "a program (ELF)"),
    (b"MZ", ""),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"PAR1", "a Parquet file"),
    (b"\x28\xb5\x2f\xfd", "a Zstandard-compressed file"),
    (b"BZh", ""),
    (b"\xfd7zXZ\x00", "an XZ-compressed file"),
)
_HTML_MARKERS = (b"<!doctype html", b"<html", b"<table", b"<head", b"<body", b"<meta", b"<div")


def what_is(head: bytes) -> str:
    """A description of non-tabular content ("an HTML page"), or "" for anything else."""
    for magic, what in _MAGIC:
        if what and head.startswith(magic):
            return what
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "a WebP image"
    if head.startswith(b"BZh") and head[3:4].isdigit():
        return "a bzip2-compressed file"
    text = head
    for bom, codec in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if head.startswith(bom):
            text = head[2:].decode(codec, errors="ignore").encode("utf-8", errors="ignore")
    text = text.removeprefix(codecs.BOM_UTF8).lstrip().lower()
    if not text.startswith(b"<"):
        return ""
    if text.startswith(b"<?xml"):
        if b"urn:schemas-microsoft-com:office:spreadsheet" in text[:4096]:
            return "an Excel 2003 XML spreadsheet"
        if any(marker in text[:4096] for marker in _HTML_MARKERS):
            return "an HTML page"
        return "an XML document"
    if any(marker in text[:4096] for marker in _HTML_MARKERS) or text.startswith(b"<!--"):
        return "an HTML page"
    return ""


def refuse_non_tabular(name: str, head: bytes) -> None:
    what = what_is(head)
    if not what:
        return
    hint = "Give a CSV, TSV or Excel (.xlsx) file."
    if what in ("an HTML page", "an Excel 2003 XML spreadsheet"):
        hint = (
            "Some systems save a web page or XML with a .xls or .csv name: open it in "
            "Excel and save it as .xlsx or CSV (UTF-8), then try again."
        )
    raise SourceError(name, f"this is {what}, not a spreadsheet", hint)
