"""Header names compared the forgiving way, one rule for matching and for drafting.

Legacy (Windows-1256) exports write Arabic ي/ك/ى where modern keyboards write ی/ک;
ة/ۀ are written for ه; ZWNJ and RLM come and go with the keyboard; Persian digits,
compatibility forms and case do not change what a header names.
"""

from __future__ import annotations

import unicodedata

from importer.core.convert import ascii_digits

# ZWNJ and RLM are not letters or digits, so every caller's filter drops them.
_LETTER_VARIANTS = str.maketrans({"ي": "ی", "ى": "ی", "ك": "ک", "ة": "ه", "ۀ": "ه"})


def fold(name: str) -> str:
    """Case, digits, compatibility forms and Arabic/Persian letter variants folded."""
    text = name if name.isascii() else unicodedata.normalize("NFKC", name)
    return ascii_digits(text).translate(_LETTER_VARIANTS).casefold()


def header_key(name: str) -> str:
    """A header name for matching a mapping's column to the file's: letters, digits
    and ``#`` (of ``name#2``) count; spaces, dashes and underscores do not."""
    return "".join(ch for ch in fold(name) if ch.isalnum() or ch == "#")
