"""Which encoding a text file is in, decided by evidence, or refused when nothing fits.

Supported by detection: UTF-8 (with or without BOM), UTF-16 (BOM), Windows-1256 (legacy
Persian/Arabic exports) and Windows-1252 (legacy Western exports). Anything else can be
read with ``--encoding``; detection never guesses it.

- Bytes that are overwhelmingly valid UTF-8 multi-byte sequences are UTF-8, even with a
  few damaged bytes (those rows become read failures, as with ``--encoding utf-8``).
- Windows-1256 must read as Arabic-script letters (nearly every high byte a letter of
  the Arabic block); Windows-1252 as Latin accented letters and the usual punctuation,
  mostly single letters inside ASCII words. Greek, Cyrillic, Big5 and the like fit
  neither and are refused with the candidates and a hint.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from importer.errors import SourceError

# At least this share of the high bytes must read as the candidate's script.
PLAUSIBLE = 0.9
# Valid UTF-8 multi-byte sequences per invalid byte that still make a file UTF-8.
UTF8_EVIDENCE = 4
_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}"
)
_HIGH_RUN = re.compile("[^\x00-\x7f]+")
_LATIN_PUNCTUATION = set("€‚„…†‡‰‹›‘’“”•–—™°±²³µ·¹º»¼½¾¿×÷«©®¡¢£¥§¨ª¬¯´¶¸\xa0")


@dataclass
class Verdict:
    encoding: str
    note: str = ""  # said to the user next to the encoding ("" when nothing to add)


def _is_arabic(char: str) -> bool:
    return "\u0600" <= char <= "\u06ff" or char in "\u200c\u200d\xa0«»"


def _is_latin(char: str) -> bool:
    if char in _LATIN_PUNCTUATION:
        return True
    return unicodedata.category(char).startswith("L") and "LATIN" in unicodedata.name(char, "")


def _share(text: str, fits: Callable[[str], bool]) -> tuple[float, list[str]]:
    high = [c for c in text if c >= "\x80"]
    if not high:
        return 1.0, []
    return sum(1 for c in high if fits(c)) / len(high), high


def cp1256_score(sample: bytes) -> float:
    text = sample.decode("cp1256", errors="replace")
    share, _ = _share(text, _is_arabic)
    return share


def cp1252_score(sample: bytes) -> float:
    """Latin letters, and mostly one or two of them between ASCII ones (José, Zürich)."""
    text = sample.decode("cp1252", errors="replace")
    share, high = _share(text, _is_latin)
    if not high:
        return 1.0
    runs = _HIGH_RUN.findall(text)
    short = sum(len(run) for run in runs if len(run) <= 2) / len(high)
    return min(share, short)


def utf8_evidence(sample: bytes) -> tuple[int, int]:
    """(valid multi-byte sequences, invalid bytes) in a sample (its tail may be cut)."""
    valid = len(_UTF8_SEQUENCE.findall(sample))
    decoded = sample.decode("utf-8", errors="replace")
    invalid = decoded.count("\ufffd") - sample.count(b"\xef\xbf\xbd")
    return valid, max(invalid, 0)


def detect(sample: bytes, name: str, at_end: bool = True) -> Verdict:
    """The encoding of a file from a sample of it (see the module docstring)."""
    if sample.startswith(codecs.BOM_UTF8):
        return Verdict("utf-8-sig")
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return Verdict("utf-16")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=at_end)
        return Verdict("utf-8")
    except UnicodeDecodeError:
        pass
    valid, invalid = utf8_evidence(sample)
    if valid >= UTF8_EVIDENCE * invalid:
        return Verdict(
            "utf-8",
            f"{invalid:,} damaged byte(s) among {valid:,} UTF-8 characters: "
            "their rows are reported as read failures",
        )
    arabic, latin = cp1256_score(sample), cp1252_score(sample)
    if arabic >= PLAUSIBLE and arabic >= latin:
        return Verdict("cp1256")
    if latin >= PLAUSIBLE:
        return Verdict("cp1252")
    raise SourceError(
        name,
        "the text encoding cannot be told from the bytes: it is not UTF-8 "
        f"({invalid:,} invalid byte(s)), and reads as neither Windows-1256 "
        f"({arabic:.0%} of its non-ASCII characters are Arabic-script letters) "
        f"nor Windows-1252 ({latin:.0%} look like Western text)",
        "Give the encoding with --encoding (for example utf-8, windows-1256, "
        "windows-1252, iso-8859-7, cp1251 or big5), or export the file as UTF-8.",
    )
