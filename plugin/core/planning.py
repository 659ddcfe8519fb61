"""Region planning: from a selection mask to the boxes and mask parameters of one job.

Vocabulary (the same in every module):

- canvas: the whole document.
- mask bounds: bounding box of the selection's non-zero pixels.
- region: mask bounds padded by how far the composite mask can reach (grow + feather + blend);
  the result image covers exactly this box, and nothing outside it changes.
- context: the box whose pixels the model sees; it contains the region. At full strength it is
  padded around the region by the krita-ai-diffusion anchor formula; for refine (strength < 1)
  it is the region rounded out to multiples of 8.

Every function here is pure; settings are frozen values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from latentbrush.protocol.geometry import Rect, Size, clamp, multiple_of, pad, relative_to, round_half_up

from .buffers import crop, mask_bounds

# Anchor formula (krita-ai-diffusion resolution.compute_bounds): pad the mask bounds by
# max(canvas_longest / CANVAS_PAD_DIVISOR, mask_avg_side * MASK_PAD_FACTOR).
CANVAS_PAD_DIVISOR = 16
MASK_PAD_FACTOR = 0.5
MIN_CONTEXT_SIDE = 512  # models trained at 512+ give poor results on smaller crops
CONTEXT_MULTIPLE = 8  # latent space is 1/8 of pixel space

# Mask edge policy (krita-ai-diffusion selection modifiers), all scaled by strength:
# feather = strength * max(FEATHER_FRACTION * mask diagonal,
#                          min(MIN_FEATHER_PX, MIN_FEATHER_SIDE_FRACTION * mask short side))
# grow    = GROW_OFFSET_PX + feather / 2
# blend   = min(MAX_BLEND_PX, grow + feather / 2)
# The anchor's 32 px minimum feather would leave the middle of a small selection (under ~128 px)
# only partly repainted, so small masks get a quarter of their short side instead.
FEATHER_FRACTION = 0.10
MIN_FEATHER_PX = 32
MIN_FEATHER_SIDE_FRACTION = 0.25
GROW_OFFSET_PX = 4
MAX_BLEND_PX = 25
MAX_EDGE_PX = 1024  # protocol limit on mask_grow / mask_feather / mask_blend


@dataclass(frozen=True)
class PlanSettings:
    """Knobs of the context and mask-edge policy; the defaults are the anchor's numbers."""

    canvas_pad_divisor: int = CANVAS_PAD_DIVISOR
    mask_pad_factor: float = MASK_PAD_FACTOR
    min_size: int = MIN_CONTEXT_SIDE
    multiple: int = CONTEXT_MULTIPLE
    square_bias: float = 1.0  # 0 keeps the padded aspect, 1 grows the short side to a square
    refine_uses_region: bool = True  # strength < 1: context = region (no extra surroundings)
    feather_fraction: float = FEATHER_FRACTION
    min_feather: int = MIN_FEATHER_PX
    min_feather_side_fraction: float = MIN_FEATHER_SIDE_FRACTION
    grow_offset: int = GROW_OFFSET_PX
    max_blend: int = MAX_BLEND_PX

    def __post_init__(self) -> None:
        for name in ("canvas_pad_divisor", "multiple"):
            if getattr(self, name) < 1:
                raise ValueError(f"PlanSettings.{name} must be >= 1")
        for name in ("min_size", "min_feather", "grow_offset", "max_blend"):
            if getattr(self, name) < 0:
                raise ValueError(f"PlanSettings.{name} must be >= 0")
        if not 0.0 <= self.square_bias <= 1.0:
            raise ValueError("PlanSettings.square_bias must be in 0..1")
        if self.mask_pad_factor < 0 or self.feather_fraction < 0 or self.min_feather_side_fraction < 0:
            raise ValueError("PlanSettings padding and feather fractions must be >= 0")


@dataclass(frozen=True)
class MaskEdges:
    """How the backend treats the mask edge, in pixels (see protocol JobRequest.mask_*)."""

    grow: int = 0
    feather: int = 0
    blend: int = 0

    @property
    def reach(self) -> int:
        """Upper bound of how far outside the mask the composite alpha can be non-zero."""
        return self.grow + self.feather + self.blend


@dataclass(frozen=True)
class RegionPlan:
    """Where one job reads and writes. All boxes are canvas pixels; region lies inside context."""

    canvas: Size
    mask_bounds: Rect
    region: Rect
    context: Rect
    edges: MaskEdges
    has_mask: bool

    @property
    def grow(self) -> int:
        return self.edges.grow

    @property
    def feather(self) -> int:
        return self.edges.feather

    @property
    def blend(self) -> int:
        return self.edges.blend


def mask_edges(mask: Rect, strength: float, settings: PlanSettings = PlanSettings()) -> MaskEdges:
    """Grow/feather/blend for a mask of this size (bigger masks get softer edges)."""
    strength = min(max(strength, 0.0), 1.0)
    floor = min(settings.min_feather, settings.min_feather_side_fraction * min(mask.width, mask.height))
    feather = round_half_up(strength * max(settings.feather_fraction * mask.size.diagonal, floor))
    grow = settings.grow_offset + feather // 2
    blend = min(settings.max_blend, grow + feather // 2)
    return MaskEdges(min(grow, MAX_EDGE_PX), min(feather, MAX_EDGE_PX), min(blend, MAX_EDGE_PX))


def context_padding(region: Rect, canvas: Size, settings: PlanSettings = PlanSettings()) -> int:
    """The anchor's padding: max(canvas_longest / 16, mask_avg_side / 2), integer pixels."""
    by_canvas = canvas.longest_side // settings.canvas_pad_divisor
    return max(by_canvas, int(region.size.average_side * settings.mask_pad_factor))


def _side(wanted: int, inner: int, limit: int, multiple: int) -> int:
    """One side of a box holding ``inner`` pixels: ``wanted``, capped by ``limit`` (the canvas side),
    and a multiple of ``multiple`` whenever one fits between ``inner`` and ``limit``."""
    side = min(multiple_of(max(wanted, inner), multiple), limit)
    if side % multiple:
        rounded_down = side - side % multiple
        if rounded_down >= inner:
            side = rounded_down
    return side


def _place(start: int, inner_start: int, inner_size: int, size: int, limit: int) -> int:
    """Start of a ``size`` span around the inner span, as close to ``start`` as the canvas allows."""
    lowest = max(0, inner_start + inner_size - size)
    highest = min(inner_start, limit - size)
    return min(max(start, lowest), highest)


def fit_around(inner: Rect, width: int, height: int, canvas: Size, multiple: int) -> Rect:
    """A box of about ``width`` x ``height``, centred on ``inner``, containing it, inside the canvas.

    Sides are multiples of ``multiple`` where the canvas allows; near an edge the box is shifted
    inward rather than shrunk (the anchor's clamp).
    """
    if not Rect.of(canvas).contains(inner) or inner.is_empty():
        raise ValueError(f"box {inner} is empty or not inside the {canvas.width}x{canvas.height} canvas")
    w = _side(width, inner.width, canvas.width, multiple)
    h = _side(height, inner.height, canvas.height, multiple)
    x = _place(inner.x - (w - inner.width) // 2, inner.x, inner.width, w, canvas.width)
    y = _place(inner.y - (h - inner.height) // 2, inner.y, inner.height, h, canvas.height)
    return Rect(x, y, w, h)


def context_box(region: Rect, canvas: Size, strength: float, settings: PlanSettings = PlanSettings()) -> Rect:
    """The context for ``region`` (the anchor formula at full strength, the region itself for refine)."""
    if strength < 1.0 and settings.refine_uses_region:
        return fit_around(region, region.width, region.height, canvas, settings.multiple)
    padding = context_padding(region, canvas, settings)
    width = max(region.width + 2 * padding, settings.min_size)
    height = max(region.height + 2 * padding, settings.min_size)
    longest = max(width, height)
    width += math.ceil((longest - width) * settings.square_bias)
    height += math.ceil((longest - height) * settings.square_bias)
    return fit_around(region, width, height, canvas, settings.multiple)


def plan_whole_canvas(canvas: Size) -> RegionPlan:
    """No selection: the job reads and writes the whole canvas, with no mask."""
    if canvas.width < 1 or canvas.height < 1:
        raise ValueError(f"canvas {canvas.width}x{canvas.height} is empty")
    whole = Rect.of(canvas)
    return RegionPlan(canvas, whole, whole, whole, MaskEdges(), has_mask=False)


def plan_generate(plan: RegionPlan, settings: PlanSettings = PlanSettings()) -> RegionPlan:
    """txt2img into a selection: there is no image to give context, so the model paints just the
    region (rounded out to multiples of 8); the mask still shapes the result's alpha."""
    if not plan.has_mask:
        return plan
    box = fit_around(plan.region, plan.region.width, plan.region.height, plan.canvas, settings.multiple)
    return RegionPlan(plan.canvas, plan.mask_bounds, box, box, plan.edges, has_mask=True)


def plan_region(
    canvas: Size, selection: Rect | None, strength: float = 1.0, settings: PlanSettings = PlanSettings()
) -> RegionPlan:
    """Plan a masked job from the selection's non-zero bounding box (None = no selection)."""
    if selection is None:
        return plan_whole_canvas(canvas)
    bounds = clamp(selection, canvas)
    if bounds.is_empty():
        raise ValueError(f"selection {selection} does not overlap the {canvas.width}x{canvas.height} canvas")
    edges = mask_edges(bounds, strength, settings)
    region = clamp(pad(bounds, edges.reach), canvas)
    return RegionPlan(canvas, bounds, region, context_box(region, canvas, strength, settings), edges, has_mask=True)


def plan_from_mask(
    canvas: Size,
    mask: bytes | None,
    mask_box: Rect | None = None,
    strength: float = 1.0,
    settings: PlanSettings = PlanSettings(),
) -> RegionPlan:
    """Plan from a gray8 coverage buffer covering ``mask_box`` (default: the whole canvas).

    An empty mask, or one that selects the whole canvas fully, counts as no selection.
    """
    if mask is None:
        return plan_whole_canvas(canvas)
    box = mask_box or Rect.of(canvas)
    inner = mask_bounds(mask, box.size)
    if inner is None:
        return plan_whole_canvas(canvas)
    selected = Rect(box.x + inner.x, box.y + inner.y, inner.width, inner.height)
    if clamp(selected, canvas) == Rect.of(canvas) and _fully_selected(mask, box, canvas):
        return plan_whole_canvas(canvas)
    return plan_region(canvas, selected, strength, settings)


def _fully_selected(mask: bytes, box: Rect, canvas: Size) -> bool:
    """Every canvas pixel has full coverage."""
    if not box.contains(Rect.of(canvas)):
        return False
    inside = crop(mask, box.size, 1, relative_to(Rect.of(canvas), box))
    return inside.count(255) == len(inside)
