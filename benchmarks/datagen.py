"""Deterministic customer exports of any size: the sample data and the benchmark inputs.

Rows look like a real CRM export: mixed-case emails, phones in several formats,
Persian names, day/month/year birthdays, blank cells, and about ``invalid_rate`` rows
with a genuine mistake a person could fix.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path

HEADER = [
    "customer_id", "first_name", "last_name", "email", "mobile", "sex", "dob", "city",
    "tier", "spent", "orders", "vip", "last_login", "prefs", "updated_at",
]  # fmt: skip

FIRST = ["Ali", "Sara", "Reza", "Maryam", "John", "Emma", "علی", "زهرا", "محمد", "فاطمه",
         "Hossein", "Neda", "امیر", "Leila", "David", "سارا"]  # fmt: skip
LAST = ["Ahmadi", "Karimi", "Smith", "Rezaei", "محمدی", "حسینی", "Jones", "Moradi",
        "کریمی", "Hosseini", "Brown", "رضایی"]  # fmt: skip
CITIES = ["Tehran", "Mashhad", "Isfahan", "تهران", "شیراز", "Tabriz", "London", ""]
TIERS = ["gold", "silver", "bronze", "platinum", ""]
SEXES = ["M", "F", "male", "Female", "مرد", "زن", "", "other"]
VIPS = ["yes", "no", "true", "false", "1", "0", ""]
DOMAINS = ["gmail.com", "Yahoo.com", "example.ir", "Outlook.com"]
_PERSIAN = str.maketrans("0123456789", "۰۱۲۳۴۵۶۷۸۹")

# Mistakes seen in real exports, one per invalid row: (column, bad value).
MISTAKES = [
    ("email", "ali.at.example.com"),
    ("dob", "31/02/1990"),
    ("mobile", "12345"),
    ("sex", "unknown"),
    ("orders", "12.5"),
    ("vip", "maybe"),
    ("prefs", "{'lang': 'fa'}"),
    ("customer_id", ""),
    ("last_login", "yesterday"),
    ("spent", "12,5O"),
]


# Allocated Iranian mobile prefixes (after the 9): libphonenumber rejects made-up ones.
_MOBILE_PREFIXES = [
    *(f"0{b}" for b in "012345"), *(f"1{b}" for b in "0123456789"),
    *(f"2{b}" for b in "0123"), *(f"3{b}" for b in "0123456789"),
]  # fmt: skip


def _phone(rng: random.Random) -> str:
    digits = "9" + "".join(rng.choice("0123456789") for _ in range(9))
    digits = "9" + _MOBILE_PREFIXES[int(digits[1:3]) % len(_MOBILE_PREFIXES)] + digits[3:]
    style = rng.randrange(6)
    if style == 0:
        return "0" + digits
    if style == 1:
        return f"+98 {digits[:3]} {digits[3:6]} {digits[6:]}"
    if style == 2:
        return digits
    if style == 3:
        return ("0" + digits).translate(_PERSIAN)
    if style == 4:
        return f"0098-{digits[:3]}-{digits[3:6]}-{digits[6:]}"
    return f"0{digits[:3]} {digits[3:6]} {digits[6:]}"


def customer_rows(count: int, seed: int = 7, invalid_rate: float = 0.01) -> Iterator[list[str]]:
    """``count`` rows matching ``HEADER``."""
    rng = random.Random(seed)
    for index in range(1, count + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        login = (
            f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} "
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}"
        )
        row = [
            f"C{index:07d}",
            first,
            last,
            f"{'User' if index % 3 else 'user'}.{index}@{rng.choice(DOMAINS)}",
            _phone(rng) if rng.random() > 0.05 else "",
            rng.choice(SEXES),
            f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(1950, 2006)}",
            rng.choice(CITIES),
            rng.choice(TIERS),
            f"{rng.randint(0, 500000) / 100:.2f}",
            str(rng.randint(0, 300)),
            rng.choice(VIPS),
            login,
            json.dumps({"lang": rng.choice(["fa", "en"]), "sms": rng.random() > 0.5}),
            login,
        ]
        if rng.random() < invalid_rate:
            column, bad = rng.choice(MISTAKES)
            row[HEADER.index(column)] = bad
        yield row


def write_csv(path: Path, count: int, seed: int = 7, invalid_rate: float = 0.01) -> None:
    """A UTF-8 CSV (gzip-compressed when the name ends in .gz)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(HEADER)
        writer.writerows(customer_rows(count, seed, invalid_rate))


def write_xlsx(path: Path, count: int, seed: int = 7, invalid_rate: float = 0.01) -> None:
    """An Excel workbook with typed cells, as Excel itself would store them."""
    import datetime

    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Customers")
    sheet.append(HEADER)
    for row in customer_rows(count, seed, invalid_rate):
        cells: list[object] = list(row)
        mobile = row[4]
        if mobile.isdigit() and not mobile.startswith("0"):
            cells[4] = int(mobile)  # Excel stores a typed phone as a number
        cells[9] = float(row[9]) if _is_number(row[9]) else row[9]
        cells[10] = int(row[10]) if row[10].isdigit() else row[10]
        with contextlib.suppress(ValueError):
            cells[12] = datetime.datetime.strptime(row[12], "%Y-%m-%d %H:%M:%S")
        sheet.append(cells)
    book.save(path)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


if __name__ == "__main__":
    target = Path(sys.argv[1])
    rows = int(sys.argv[2])
    if target.suffix == ".xlsx":
        write_xlsx(target, rows)
    else:
        write_csv(target, rows)
