"""A set of row numbers, one bit each: five million rows cost 625 KB, not 300 MB."""

from __future__ import annotations


class RowSet:
    """Row numbers (non-negative ints) in a growable bitmap."""

    __slots__ = ("_bits", "count")

    def __init__(self) -> None:
        self._bits = bytearray()
        self.count = 0

    def add(self, row: int) -> None:
        byte = row >> 3
        if byte >= len(self._bits):
            # Grow by half again so appending rows in order stays amortised O(1).
            self._bits.extend(bytes(byte - len(self._bits) + 1 + (len(self._bits) >> 1)))
        mask = 1 << (row & 7)
        if not self._bits[byte] & mask:
            self._bits[byte] |= mask
            self.count += 1

    def __contains__(self, row: object) -> bool:
        if not isinstance(row, int) or row < 0:
            return False
        byte = row >> 3
        return byte < len(self._bits) and bool(self._bits[byte] & (1 << (row & 7)))

    def __len__(self) -> int:
        return self.count

    def to_bytes(self) -> bytes:
        """The bitmap (bit ``row & 7`` of byte ``row >> 3``), without trailing zeros."""
        return bytes(self._bits).rstrip(b"\0")

    @classmethod
    def from_bytes(cls, data: bytes) -> RowSet:
        """The set ``to_bytes`` gave."""
        found = cls()
        found._bits = bytearray(data)
        found.count = int.from_bytes(data, "little").bit_count()
        return found
