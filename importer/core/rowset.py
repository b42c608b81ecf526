"""A set of row numbers, one bit each: five million rows cost 625 KB, not 300 MB."""

from __future__ import annotations


class RowSet:
    """Row numbers (non-negative ints) in a growable bitmap; ``between`` makes one of
    the rows in a span only, as small as the span (a partition's share, to ship)."""

    __slots__ = ("_base", "_bits", "count")

    def __init__(self) -> None:
        self._base = 0  # the row of the first bit (a multiple of 8)
        self._bits = bytearray()
        self.count = 0

    def add(self, row: int) -> None:
        row -= self._base
        if row < 0:
            raise ValueError("row before the start of this set")
        byte = row >> 3
        if byte >= len(self._bits):
            # Grow by half again so appending rows in order stays amortised O(1).
            self._bits.extend(bytes(byte - len(self._bits) + 1 + (len(self._bits) >> 1)))
        mask = 1 << (row & 7)
        if not self._bits[byte] & mask:
            self._bits[byte] |= mask
            self.count += 1

    def add_range(self, first: int, last: int) -> None:
        """Add the rows from ``first`` to ``last``, inclusive (whole bytes at a time)."""
        if first > last:
            return
        while first <= last and (first - self._base) & 7:
            self.add(first)
            first += 1
        while last >= first and (last - self._base + 1) & 7:
            self.add(last)
            last -= 1
        if first > last:
            return
        self.add(last)  # grows the bitmap to hold the span
        low, high = (first - self._base) >> 3, ((last - self._base) >> 3) + 1
        before = int.from_bytes(self._bits[low:high], "little").bit_count()
        self._bits[low:high] = b"\xff" * (high - low)
        self.count += (high - low) * 8 - before

    def __contains__(self, row: object) -> bool:
        if not isinstance(row, int) or row < self._base:
            return False
        row -= self._base
        byte = row >> 3
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << (row & 7)))

    def __len__(self) -> int:
        return self.count

    def to_bytes(self) -> bytes:
        """The bitmap (bit ``row & 7`` of byte ``row >> 3``), without trailing zeros."""
        if self._base:
            raise ValueError("a span of a set (from between) has no bitmap of its own")
        return bytes(self._bits).rstrip(b"\0")

    @classmethod
    def from_bytes(cls, data: bytes) -> RowSet:
        """The set ``to_bytes`` gave."""
        found = cls()
        found._bits = bytearray(data)
        found.count = int.from_bytes(data, "little").bit_count()
        return found

    def between(self, first: int, last: int | None) -> RowSet:
        """The rows from ``first`` to ``last`` (None: every later row), inclusive."""
        first = max(first, self._base)
        end = len(self._bits) * 8 + self._base if last is None else last + 1
        part = RowSet()
        if end <= first:
            return part
        part._base = first & ~7
        low, high = (part._base - self._base) >> 3, ((end - 1 - self._base) >> 3) + 1
        part._bits = bytearray(self._bits[low:high])
        if part._bits:  # the bits of the edge bytes outside the span are cleared
            part._bits[0] &= 0xFF << (first & 7) & 0xFF
            if len(part._bits) == high - low:
                part._bits[-1] &= 0xFF >> (7 - ((end - 1) & 7))
        part.count = int.from_bytes(part._bits, "little").bit_count()
        return part
