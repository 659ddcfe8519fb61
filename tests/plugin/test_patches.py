"""Which box changed (numpy and the bytes-only fallback agree), and the patches the client builds from it."""

from __future__ import annotations

import random

import pytest
from latentbrush.plugin.core import buffers
from latentbrush.plugin.core.buffers import changed_box, crop
from latentbrush.plugin.core.patches import PatchBases
from latentbrush.protocol import Rect, Size, blob_hash


def _brute_box(old: bytes, new: bytes, width: int, height: int, bpp: int) -> Rect | None:
    def pixel(data: bytes, x: int, y: int) -> bytes:
        return data[(y * width + x) * bpp : (y * width + x + 1) * bpp]

    cells = [(x, y) for y in range(height) for x in range(width) if pixel(old, x, y) != pixel(new, x, y)]
    if not cells:
        return None
    xs, ys = [c[0] for c in cells], [c[1] for c in cells]
    return Rect(min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)


@pytest.mark.parametrize("bpp", [1, 3, 4])
def test_changed_box_matches_a_pixel_by_pixel_scan_with_and_without_numpy(bpp):
    rng = random.Random(bpp)
    for _ in range(150):
        width, height = rng.randint(1, 23), rng.randint(1, 17)
        old = bytes(rng.randrange(256) for _ in range(width * height * bpp))
        new = bytearray(old)
        for _ in range(rng.choice([0, 1, 2, 5])):
            new[rng.randrange(len(new))] ^= 1 << rng.randrange(8)
        want = _brute_box(old, bytes(new), width, height, bpp)
        extent = Size(width, height)
        assert changed_box(old, bytes(new), extent, bpp) == want
        assert buffers._changed_box_bytes(old, bytes(new), extent, bpp) == want


def test_changed_box_checks_the_buffer_sizes():
    with pytest.raises(ValueError):
        changed_box(bytes(8), bytes(7), Size(2, 1), 4)


def _canvas(width: int, height: int, seed: int = 0) -> bytearray:
    rng = random.Random(seed)
    return bytearray(rng.randrange(256) for _ in range(width * height * 4))


def test_a_small_change_becomes_a_patch_of_the_last_upload():
    bases = PatchBases()
    old = bytes(_canvas(40, 30))
    bases.remember(old, "rgba8", 40, 30, blob_hash(old))
    new = bytearray(old)
    for y in range(5, 9):
        new[(y * 40 + 10) * 4 : (y * 40 + 13) * 4] = bytes(12)
    new_bytes = bytes(new)
    patch = bases.patch(new_bytes, "rgba8", 40, 30, blob_hash(new_bytes))
    assert patch is not None
    header = patch.header
    assert (header.base, header.rect, header.hash) == (blob_hash(old), Rect(10, 5, 3, 4), blob_hash(new_bytes))
    assert (header.format, header.width, header.height) == ("rgba8", 40, 30)
    assert patch.payload == crop(new_bytes, Size(40, 30), 4, Rect(10, 5, 3, 4))


def test_no_patch_for_a_large_change_another_size_an_encoded_format_or_after_forget():
    bases = PatchBases()
    old = bytes(_canvas(20, 20))
    bases.remember(old, "rgba8", 20, 20, blob_hash(old))
    most = bytes(_canvas(20, 20, seed=1))  # every pixel differs
    assert bases.patch(most, "rgba8", 20, 20, blob_hash(most)) is None
    other = bytes(_canvas(20, 10))
    assert bases.patch(other, "rgba8", 20, 10, blob_hash(other)) is None
    assert bases.patch(old, "bgra8", 20, 20, blob_hash(old)) is None  # nothing of that format uploaded
    bases.remember(b"\x89PNG", "png", 20, 20, blob_hash(b"\x89PNG"))
    assert bases.patch(b"\x89PNH", "png", 20, 20, blob_hash(b"\x89PNH")) is None
    small = bytearray(old)
    small[0] ^= 1
    assert bases.patch(bytes(small), "rgba8", 20, 20, blob_hash(bytes(small))) is not None
    bases.forget("rgba8", 20, 20)
    assert bases.patch(bytes(small), "rgba8", 20, 20, blob_hash(bytes(small))) is None


def test_only_the_newest_bases_are_kept():
    bases = PatchBases(max_items=2)
    images = {side: bytes(_canvas(side, side, seed=side)) for side in (4, 5, 6)}
    for side, data in images.items():
        bases.remember(data, "rgba8", side, side, blob_hash(data))
    changed = {side: bytes([data[0] ^ 1]) + data[1:] for side, data in images.items()}
    got = {side: bases.patch(data, "rgba8", side, side, blob_hash(data)) for side, data in changed.items()}
    assert got[4] is None and got[5] is not None and got[6] is not None
