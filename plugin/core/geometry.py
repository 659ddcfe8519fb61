"""Immutable geometry value types and pure functions on them (no Qt, no host API)."""

from __future__ import annotations

from typing import NamedTuple


class Extent(NamedTuple):
    """A size in pixels."""

    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


class Bounds(NamedTuple):
    """A pixel rectangle: top-left corner and size, in canvas coordinates."""

    x: int
    y: int
    width: int
    height: int

    @property
    def extent(self) -> Extent:
        return Extent(self.width, self.height)

    @property
    def right(self) -> int:
        return self.x + self.width

    @property
    def bottom(self) -> int:
        return self.y + self.height

    def is_empty(self) -> bool:
        return self.width <= 0 or self.height <= 0
