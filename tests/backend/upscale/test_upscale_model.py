"""Model upscaling in feathered tiles: equality with the untiled result, seams, out-of-memory, hints."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import spandrel
import torch
from latentbrush.backend.events import EngineError, JobCancelled
from latentbrush.backend.upscale.model_upscale import ModelTiler, is_out_of_memory, lanczos_resize
from latentbrush.backend.upscale.tiles import axis_spans, partition_spans
from latentbrush.protocol import ErrorCode, Size
from upscale_fakes import OomModel, compact, descriptor, esrgan, smooth_image

COMPACT_REACH = 4  # receptive-field radius of the tiny Compact (num_conv=2): 4 stacked 3x3 convs


@pytest.fixture(scope="module")
def compact4():
    return descriptor(compact(4))


@pytest.fixture(scope="module")
def esrgan4():
    return descriptor(esrgan(4))


def as_float(rgba: np.ndarray) -> np.ndarray:
    return rgba[..., :3].astype(np.float32) / 255.0


def run(model, image: np.ndarray, tile: int, overlap: int, cancel: threading.Event | None = None) -> np.ndarray:
    return ModelTiler(model, tile, overlap, cancel or threading.Event()).run(image)


def near_tile_edges(length: int, tile: int, overlap: int, reach: int) -> np.ndarray:
    """Input positions within ``reach`` of a tile edge inside the image (where tiles see less context)."""
    near = np.zeros(length, dtype=bool)
    spans = axis_spans(length, tile, overlap)
    edges = [s.start for s in spans[1:]] + [s.end for s in spans[:-1]]
    for edge in edges:
        near[max(0, edge - reach) : edge + reach] = True
    return near


def test_tiled_equals_untiled_away_from_tile_edges(compact4) -> None:
    image = as_float(smooth_image(70, 101, seed=1))
    whole = run(compact4, image, 4096, 0)
    tiled = run(compact4, image, 40, 12)
    assert whole.shape == tiled.shape == (280, 404, 3)
    far_y = ~near_tile_edges(70, 40, 12, COMPACT_REACH).repeat(4)
    far_x = ~near_tile_edges(101, 40, 12, COMPACT_REACH).repeat(4)
    assert far_y.sum() > 100 and far_x.sum() > 100
    np.testing.assert_allclose(tiled[far_y][:, far_x], whole[far_y][:, far_x], atol=1e-5)
    # near the edges the feathering keeps the difference small
    assert np.abs(tiled - whole).max() < 0.03


def column_steps(image: np.ndarray) -> np.ndarray:
    """Mean absolute step between output column c and c+1, per c."""
    return np.abs(np.diff(image, axis=1)).mean(axis=(0, 2))


def seam_and_inside_steps(image: np.ndarray, borders: list[int], reach: int = 12, margin: int = 32):
    """Largest step within ``reach`` columns of a tile border, and the steps elsewhere (away from
    the image's own edges too, where any conv net's output jumps)."""
    steps = column_steps(image)
    near = np.zeros(steps.size, dtype=bool)
    for border in borders:
        near[max(0, border - reach) : border + reach + 1] = True
    inside = ~near
    inside[:margin] = inside[-margin:] = False
    return steps[near].max(), steps[inside]


def test_feathered_tiles_leave_no_seam_but_stitched_tiles_do(esrgan4) -> None:
    """A seam: steps across a tile border larger than any step inside the tiles."""
    image = as_float(smooth_image(64, 120, seed=2))
    tiled = run(esrgan4, image, 64, 32)  # the overlap covers this ESRGAN's ~20 px receptive field
    spans = axis_spans(120, 64, 32)
    borders = sorted({s.start * 4 for s in spans[1:]} | {s.end * 4 - 1 for s in spans[:-1]})
    at_seams, inside = seam_and_inside_steps(tiled, borders)
    assert at_seams <= inside.max()
    whole = run(esrgan4, image, 4096, 0)
    assert np.abs(tiled - whole).max() < 0.01

    # control: the same model over abutting tiles pasted side by side shows its seams in this metric
    stitched = np.zeros_like(tiled)
    parts = partition_spans(120, 40)
    for span in parts:
        stitched[:, span.start * 4 : span.end * 4] = run(esrgan4, image[:, span.start : span.end], 4096, 0)
    at_seams, inside = seam_and_inside_steps(stitched, [s.start * 4 for s in parts[1:]])
    assert at_seams > 10 * inside.max()


def test_out_of_memory_halves_the_tile_and_retries(compact4) -> None:
    image = as_float(smooth_image(100, 90, seed=3))
    model = OomModel(compact4, max_side=40)
    tiler = ModelTiler(model, 64, 8, threading.Event())
    out = tiler.run(image)
    assert out.shape == (400, 360, 3)
    first = tiler.grid(90, 100).boxes()[0]
    assert (first.height, first.width) == (54, 49)
    assert model.failed == [(54, 49)], "only the first tile fails; later tiles use the smaller limit at once"
    assert tiler.limit == 32 and tiler.oom_retries == 1  # half of 54 is below the 32 px floor: the floor
    assert model.seen and all(max(size) <= 32 for size in model.seen)
    whole = run(compact4, image, 4096, 0)
    assert np.abs(out - whole).max() < 0.05


def test_a_runtime_error_saying_out_of_memory_counts_too(compact4) -> None:
    model = OomModel(compact4, max_side=50, error=RuntimeError)
    tiler = ModelTiler(model, 64, 8, threading.Event())
    assert tiler.run(as_float(smooth_image(64, 64))).shape == (256, 256, 3)
    assert tiler.limit == 32
    assert is_out_of_memory(RuntimeError("MPS backend out of memory")) and not is_out_of_memory(RuntimeError("shape"))


def test_other_model_errors_are_not_swallowed(compact4) -> None:
    class Broken(OomModel):
        def __call__(self, image: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    with pytest.raises(RuntimeError, match="shapes"):
        ModelTiler(Broken(compact4, max_side=1000), 64, 8, threading.Event()).run(as_float(smooth_image(32, 32)))


def test_out_of_memory_below_the_smallest_tile_is_an_engine_error(compact4) -> None:
    model = OomModel(compact4, max_side=10)
    with pytest.raises(EngineError) as err:
        ModelTiler(model, 64, 8, threading.Event()).run(as_float(smooth_image(64, 64)))
    assert err.value.code == ErrorCode.OUT_OF_MEMORY and err.value.field == "job.upscale.tile"
    assert model.failed == [(64, 64), (27, 27)]  # 64 -> limit 32 -> three 27 px tiles overlapping by 8 -> give up


@pytest.mark.parametrize("hint", [spandrel.ModelTiling.DISCOURAGED, spandrel.ModelTiling.INTERNAL])
def test_tiling_hint_runs_untiled_while_it_fits_then_tiles(compact4, hint) -> None:
    image = as_float(smooth_image(80, 100))
    fits = OomModel(compact4, max_side=1000, tiling=hint)
    tiler = ModelTiler(fits, 32, 8, threading.Event())
    assert tiler.grid(100, 80).count == 1
    tiler.run(image)
    assert fits.seen == [(80, 100)]
    too_big = OomModel(compact4, max_side=60, tiling=hint)
    tiler = ModelTiler(too_big, 32, 8, threading.Event())
    assert tiler.run(image).shape == (320, 400, 3)
    assert too_big.failed == [(80, 100)] and tiler.limit == 50
    assert all(max(size) <= 50 for size in too_big.seen)


def test_tiles_follow_the_models_size_requirements(compact4) -> None:
    model = OomModel(compact4, max_side=1000)
    model.size_requirements = spandrel.SizeRequirements(minimum=16, multiple_of=16, square=True)
    tiler = ModelTiler(model, 50, 8, threading.Event())
    assert tiler.tile == 48
    tiler.run(as_float(smooth_image(100, 130)))
    assert model.seen and all(h == w == 48 for h, w in model.seen)


def test_cancel_is_checked_between_tiles(compact4) -> None:
    cancel = threading.Event()
    model = OomModel(compact4, max_side=1000)
    calls = []

    def on_tile(number: int, count: int, box, tile: np.ndarray) -> None:
        calls.append(number)
        if number == 2:
            cancel.set()

    with pytest.raises(JobCancelled):
        ModelTiler(model, 32, 8, cancel).run(as_float(smooth_image(64, 64)), on_tile)
    assert calls == [1, 2] and len(model.seen) == 2


def test_progress_callback_reports_every_tile_with_its_output_box(compact4) -> None:
    seen = []
    tiler = ModelTiler(compact4, 32, 8, threading.Event())
    tiler.run(as_float(smooth_image(50, 70)), lambda n, c, box, tile: seen.append((n, c, box, tile.shape)))
    count = tiler.grid(70, 50).count
    assert [s[0] for s in seen] == list(range(1, count + 1)) and {s[1] for s in seen} == {count}
    side = tiler.grid(70, 50).columns[0].length
    assert all(shape == (box.height, box.width, 3) and box.width == 4 * side for _, _, box, shape in seen)


def test_lanczos_resize_in_float_matches_pillow() -> None:
    from PIL import Image

    rgb = smooth_image(21, 33)[..., :3]
    ours = lanczos_resize(rgb.astype(np.float32) / 255.0, Size(70, 50))
    pillow = np.asarray(Image.fromarray(rgb).resize((70, 50), Image.Resampling.LANCZOS)).astype(np.float32) / 255.0
    assert ours.shape == (50, 70, 3) and ours.min() >= 0 and ours.max() <= 1
    assert np.abs(ours - pillow).max() <= 2 / 255
