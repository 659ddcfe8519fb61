"""Region planning: from a selection mask to the boxes and mask parameters of one job.

Vocabulary (the same in every module):

- canvas: the whole document.
- mask bounds: bounding box of the selection's non-zero pixels.
- region: mask bounds padded by how far the result may reach past the selection (``outward``,
  0 by default: the selection is the contract); the result image covers exactly this box, and
  nothing outside it changes. Inside it the result's alpha never exceeds the selection's
  coverage grown by ``outward``.
- denoise box: mask bounds padded by grow + feather, where the model repaints; it holds the region.
- context: the box whose pixels the model sees; it contains the denoise box. At full strength it
  is padded around the denoise box by the krita-ai-diffusion anchor formula; for refine
  (strength < 1) it is the denoise box rounded out to multiples of 8.

Every function here is pure; settings are frozen values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from latentbrush.protocol.geometry import Rect, Size, clamp, intersect, multiple_of, pad, relative_to, round_half_up

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
# grow    = max(GROW_OFFSET_PX + feather / 2, outward)
# blend   = min(MAX_BLEND_PX, grow + feather / 2, short side / BLEND_SIDE_DIVISOR), or 0 for a
#           selection with its own soft edge (the divisor keeps a small selection's middle opaque)
# The anchor's 32 px minimum feather would leave the middle of a small selection (under ~128 px)
# only partly repainted, so small masks get a quarter of their short side instead. Grow and
# feather only widen where the model repaints; the blend ramp lies inside the selection (the
# server caps the result's alpha at the selection's coverage, protocol ``mask_outward``).
FEATHER_FRACTION = 0.10
MIN_FEATHER_PX = 32
MIN_FEATHER_SIDE_FRACTION = 0.25
GROW_OFFSET_PX = 4
MAX_BLEND_PX = 25
BLEND_SIDE_DIVISOR = 5
MAX_EDGE_PX = 1024  # protocol limit on mask_grow / mask_feather / mask_blend / mask_outward
# A selection is "soft" (feathered: its own alpha is the blend) when it has more partially
# covered pixels than SOFT_EDGE_PER_SIDE x (w + h) of its bounds: antialiasing alone gives about
# one per edge pixel, at most 2 x (w + h), so this means an edge ramp wider than ~2 px.
SOFT_EDGE_PER_SIDE = 4


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
    blend_side_divisor: int = BLEND_SIDE_DIVISOR

    def __post_init__(self) -> None:
        for name in ("canvas_pad_divisor", "multiple", "blend_side_divisor"):
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
    outward: int = 0  # how far past the selection the result's alpha may reach (mask_outward)

    @property
    def reach(self) -> int:
        """How far outside the mask the result's alpha can be non-zero (the server caps it there)."""
        return self.outward

    @property
    def denoise_reach(self) -> int:
        """How far outside the mask the model repaints (the denoise mask's support)."""
        return self.grow + self.feather


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

    @property
    def outward(self) -> int:
        return self.edges.outward


def mask_edges(
    mask: Rect, strength: float, settings: PlanSettings = PlanSettings(), *, outward: int = 0, soft: bool = False
) -> MaskEdges:
    """Grow/feather/blend for a mask of this size (bigger masks get softer edges).

    ``outward``: how far past the selection the result may blend (the painter's option, 0 = not at
    all); the model always repaints at least that far. ``soft``: the selection has its own soft
    edge (see :func:`has_soft_edge`), which is then the blend, as the painter feathered it.
    """
    if outward < 0:
        raise ValueError("outward must be >= 0")
    strength = min(max(strength, 0.0), 1.0)
    outward = min(outward, MAX_EDGE_PX)
    floor = min(settings.min_feather, settings.min_feather_side_fraction * min(mask.width, mask.height))
    feather = round_half_up(strength * max(settings.feather_fraction * mask.size.diagonal, floor))
    grow = max(settings.grow_offset + feather // 2, outward)
    inside = min(mask.width, mask.height) // settings.blend_side_divisor  # the blend ramps inside the selection
    blend = 0 if soft else min(settings.max_blend, grow + feather // 2, inside)
    return MaskEdges(min(grow, MAX_EDGE_PX), min(feather, MAX_EDGE_PX), min(blend, MAX_EDGE_PX), outward)


def has_soft_edge(mask: bytes, bounds: Rect) -> bool:
    """The gray8 ``mask`` (its non-zero part spanning ``bounds``) has a feathered edge, not just
    antialiasing: more partly covered pixels than SOFT_EDGE_PER_SIDE x (w + h)."""
    partial = len(mask) - mask.count(0) - mask.count(255)
    return partial > SOFT_EDGE_PER_SIDE * (bounds.width + bounds.height)


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


def plan_box(canvas: Size, box: Rect) -> RegionPlan:
    """A job that reads and writes ``box`` (clipped to the canvas) as it is, with no mask (a control image)."""
    clipped = intersect(box, Rect.of(canvas))
    if clipped.is_empty():
        raise ValueError(f"{box} does not overlap the {canvas.width}x{canvas.height} canvas")
    return RegionPlan(canvas, clipped, clipped, clipped, MaskEdges(), has_mask=False)


def plan_generate(plan: RegionPlan, settings: PlanSettings = PlanSettings()) -> RegionPlan:
    """txt2img into a selection: there is no image to give context, so the model paints just the
    region (rounded out to multiples of 8); the mask still shapes the result's alpha."""
    if not plan.has_mask:
        return plan
    box = fit_around(plan.region, plan.region.width, plan.region.height, plan.canvas, settings.multiple)
    return RegionPlan(plan.canvas, plan.mask_bounds, box, box, plan.edges, has_mask=True)


def plan_region(
    canvas: Size,
    selection: Rect | None,
    strength: float = 1.0,
    settings: PlanSettings = PlanSettings(),
    *,
    outward: int = 0,
    soft: bool = False,
) -> RegionPlan:
    """Plan a masked job from the selection's non-zero bounding box (None = no selection)."""
    if selection is None:
        return plan_whole_canvas(canvas)
    bounds = clamp(selection, canvas)
    if bounds.is_empty():
        raise ValueError(f"selection {selection} does not overlap the {canvas.width}x{canvas.height} canvas")
    edges = mask_edges(bounds, strength, settings, outward=outward, soft=soft)
    region = clamp(pad(bounds, edges.reach), canvas)
    denoised = clamp(pad(bounds, edges.denoise_reach), canvas)  # holds region: grow >= outward
    context = context_box(denoised, canvas, strength, settings)
    return RegionPlan(canvas, bounds, region, context, edges, has_mask=True)


def plan_from_mask(
    canvas: Size,
    mask: bytes | None,
    mask_box: Rect | None = None,
    strength: float = 1.0,
    settings: PlanSettings = PlanSettings(),
    *,
    outward: int = 0,
    whole_canvas_is_selection: bool = False,
) -> RegionPlan:
    """Plan from a gray8 coverage buffer covering ``mask_box`` (default: the whole canvas).

    An empty mask counts as no selection; so does one that selects the whole canvas fully, unless
    ``whole_canvas_is_selection`` (an explicit inpaint of everything: Select All + Inpaint).
    """
    if mask is None:
        return plan_whole_canvas(canvas)
    box = mask_box or Rect.of(canvas)
    inner = mask_bounds(mask, box.size)
    if inner is None:
        return plan_whole_canvas(canvas)
    selected = Rect(box.x + inner.x, box.y + inner.y, inner.width, inner.height)
    on_canvas = clamp(selected, canvas)
    if on_canvas.is_empty():
        return plan_whole_canvas(canvas)
    if not whole_canvas_is_selection and on_canvas == Rect.of(canvas) and _fully_selected(mask, box, canvas):
        return plan_whole_canvas(canvas)
    inside = crop(mask, box.size, 1, relative_to(clamp(box, canvas), box))
    soft = has_soft_edge(inside, on_canvas)
    return plan_region(canvas, selected, strength, settings, outward=outward, soft=soft)


def _fully_selected(mask: bytes, box: Rect, canvas: Size) -> bool:
    """Every canvas pixel has full coverage."""
    if not box.contains(Rect.of(canvas)):
        return False
    inside = crop(mask, box.size, 1, relative_to(Rect.of(canvas), box))
    return inside.count(255) == len(inside)
