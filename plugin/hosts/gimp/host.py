"""The GIMP 3 implementation of the core's ``Host`` interface (runs inside a GIMP plug-in process).

Pixels are read and written through the drawables' GEGL buffers in "R'G'B'A u8" (8-bit sRGB with
alpha, whatever the image's precision: babl converts), so this host's native format is rgba8.
Only the GIMP main-loop thread of the plug-in process may call it (libgimp is not thread safe).

Undo: the result layer is added inside one undo group, so one Ctrl+Z removes it. The preview layer
is inserted and removed with the image's undo stack frozen, so previews never appear in the undo
history; its pixels are written straight into its buffer, which GIMP does not record either.
"""

from __future__ import annotations

from gi.repository import Gegl, Gimp
from latentbrush.plugin.core.buffers import paste
from latentbrush.plugin.core.controller import ControllerError
from latentbrush.plugin.core.host import Pixels, Selection
from latentbrush.protocol.geometry import Rect, Size, intersect, relative_to, translate

PREVIEW_LAYER_NAME = "[Preview]"
# Marks our preview layer, so a preview left behind by a killed plug-in (GIMP's own progress
# "cancel" button kills the plug-in process) is recognised and removed by the next run.
PREVIEW_PARASITE = "latentbrush-preview"
RGBA_FORMAT = "R'G'B'A u8"
MASK_FORMAT = "Y u8"  # selection coverage is linear: read it without a gamma curve


def _rect(bounds: Rect) -> Gegl.Rectangle:
    return Gegl.Rectangle.new(bounds.x, bounds.y, bounds.width, bounds.height)


def _layer_type(image: Gimp.Image) -> Gimp.ImageType:
    # A layer must match its image's base type; babl converts our RGBA bytes on write.
    return Gimp.ImageType.GRAYA_IMAGE if image.get_base_type() == Gimp.ImageBaseType.GRAY else Gimp.ImageType.RGBA_IMAGE


def _check_pixels(pixels: Pixels) -> None:
    if pixels.format != "rgba8":
        raise ValueError(f"pixels.format: the GIMP host writes rgba8, got {pixels.format!r}")
    extent = pixels.data_extent
    if len(pixels.data) != extent.width * extent.height * 4:
        expected = extent.width * extent.height * 4
        raise ValueError(f"pixels.data: {len(pixels.data)} bytes, expected {expected} for {extent}")


def is_preview_layer(layer: Gimp.Layer) -> bool:
    return layer.get_parasite(PREVIEW_PARASITE) is not None


def _layer_ids(layers: list[Gimp.Layer]) -> set[int]:
    """The ids of ``layers`` and of every layer inside their groups."""
    ids: set[int] = set()
    for layer in layers:
        ids.add(layer.get_id())
        if layer.is_group():
            ids |= _layer_ids(list(layer.get_children()))
    return ids


class GimpHost:
    """``Host`` over one GIMP image. Counts the preview frames it showed (``previews_shown``)."""

    pixel_format = "rgba8"

    def __init__(self, image: Gimp.Image) -> None:
        self._image = image
        self._preview: Gimp.Layer | None = None
        self._group_open = False  # an upscale's "Scale Image" waits for its result layer in one undo group
        self.previews_shown = 0

    @property
    def image(self) -> Gimp.Image:
        return self._image

    def canvas_size(self) -> Size:
        return Size(self._image.get_width(), self._image.get_height())

    def read_pixels(self, bounds: Rect) -> Pixels:
        """The visible composite of ``bounds``: merged from a throw-away duplicate of the image.

        GIMP gives plug-ins no access to the projection, and ``edit_copy_visible`` would clobber
        the user's clipboard, so a duplicate (undo disabled, never displayed) is merged instead.
        """
        empty = Pixels(bounds, "rgba8", bytes(bounds.width * bounds.height * 4))
        dup = self._image.duplicate()
        try:
            dup.undo_disable()
            for layer in dup.get_layers():
                if is_preview_layer(layer):
                    dup.remove_layer(layer)
            if not any(layer.get_visible() for layer in dup.get_layers()):
                return empty
            merged = dup.merge_visible_layers(Gimp.MergeType.CLIP_TO_IMAGE)
            _, ox, oy = merged.get_offsets()
            local = Rect(bounds.x - ox, bounds.y - oy, bounds.width, bounds.height)
            # AbyssPolicy.NONE: whatever lies past the canvas reads as transparent black
            data = merged.get_buffer().get(_rect(local), 1.0, RGBA_FORMAT, Gegl.AbyssPolicy.NONE)
            return Pixels(bounds, "rgba8", bytes(data))
        finally:
            dup.delete()

    def read_control(self, source: object, bounds: Rect) -> Pixels:
        """The own pixels of ``source`` (a layer of this image, shown or hidden) over ``bounds``, at full opacity
        and without its mask; transparent past its edges and the canvas'. babl converts any layer type (RGB
        without alpha, grey, high precision) to rgba8, as in ``read_pixels``."""
        layer = self._own_layer(source)
        _, ox, oy = layer.get_offsets()
        on_layer = Rect(ox, oy, layer.get_width(), layer.get_height())
        part = intersect(intersect(bounds, on_layer), Rect.of(self.canvas_size()))
        out = bytearray(bounds.width * bounds.height * 4)
        if not part.is_empty():
            data = layer.get_buffer().get(_rect(translate(part, -ox, -oy)), 1.0, RGBA_FORMAT, Gegl.AbyssPolicy.NONE)
            paste(out, bounds.size, 4, bytes(data), relative_to(part, bounds))
        return Pixels(bounds, "rgba8", bytes(out))

    def _own_layer(self, source: object) -> Gimp.Layer:
        """``source`` if it is a layer of this image; the painter is told which one is not."""
        if not isinstance(source, Gimp.Layer) or not source.is_valid():
            raise ControllerError("A layer picked as control, reference or region no longer exists: pick another one")
        if source.get_id() not in _layer_ids(list(self._image.get_layers())):
            raise ControllerError(f"The layer {source.get_name()!r} picked as control, reference or region is not in "
                                  "this image (any more): pick a layer of this image")
        return source

    def selection(self) -> Selection | None:
        _, non_empty, x1, y1, x2, y2 = Gimp.Selection.bounds(self._image)
        if not non_empty:
            return None
        bounds = Rect(x1, y1, x2 - x1, y2 - y1)
        mask = self._image.get_selection().get_buffer()
        return Selection(bounds, bytes(mask.get(_rect(bounds), 1.0, MASK_FORMAT, Gegl.AbyssPolicy.NONE)))

    def add_result_layer(self, name: str, pixels: Pixels) -> Gimp.Layer:
        """A new layer of exactly ``pixels.bounds`` at its offset, on top; one undo step."""
        _check_pixels(pixels)
        b = pixels.bounds
        if not self._group_open:
            self._image.undo_group_start()
        self._group_open = False
        try:
            self._select_users_layers()  # GIMP 3.0 undoes a layer added while a frozen-undo layer was selected badly
            layer = Gimp.Layer.new(
                self._image, name, b.width, b.height, _layer_type(self._image), 100.0, Gimp.LayerMode.NORMAL
            )
            self._image.insert_layer(layer, None, self._top_position())
            layer.set_offsets(b.x, b.y)
            self._write(layer, pixels)
        finally:
            self._image.undo_group_end()
        Gimp.displays_flush()
        return layer

    def show_preview(self, pixels: Pixels) -> None:
        """Write a frame into the preview layer, replacing its pixels alpha included: a masked job's frames
        carry the composite alpha, so the preview is clipped to the selection with the result's soft edge."""
        _check_pixels(pixels)
        b = pixels.bounds
        layer = self._preview
        if layer is None or not layer.is_valid() or (layer.get_width(), layer.get_height()) != (b.width, b.height):
            self.remove_preview()
            layer = self._new_preview_layer(b)
        elif layer.get_offsets()[1:] != (b.x, b.y):
            layer.set_lock_position(False)
            layer.set_offsets(b.x, b.y)
            layer.set_lock_position(True)
        # GIMP kills a plug-in that writes into a content-locked drawable: unlock around the write
        layer.set_lock_content(False)
        if pixels.size is None or pixels.size == b.size:
            self._write(layer, pixels)
        else:
            _stretch_into(layer, pixels)
        layer.set_lock_content(True)
        self.previews_shown += 1
        Gimp.displays_flush()

    def remove_preview(self) -> None:
        layers = [self._preview] if self._preview is not None else []
        self._preview = None
        self.remove_stale_previews(layers)
        if self._group_open:  # a failed upscale: close the group its "Scale Image" opened
            self._group_open = False
            self._image.undo_group_end()

    def resize_canvas(self, extent: Size) -> None:
        """Scale the image (every layer) to ``extent``; the result layer that follows joins its undo step."""
        if not self._group_open:
            self._image.undo_group_start()
            self._group_open = True
        self._image.scale(extent.width, extent.height)
        Gimp.displays_flush()

    def remove_stale_previews(self, extra: list[Gimp.Layer] | None = None) -> int:
        """Remove every preview layer of this image (ours, or one a killed run left); returns how many."""
        found = [layer for layer in self._image.get_layers() if is_preview_layer(layer)]
        found += [layer for layer in extra or [] if layer.is_valid() and layer not in found]
        if not found:
            return 0
        self._image.undo_freeze()
        try:
            for layer in found:
                if layer.is_valid():
                    self._image.remove_layer(layer)
        finally:
            self._image.undo_thaw()
        Gimp.displays_flush()
        return len(found)

    def report_status(self, text: str, progress: float | None = None) -> None:
        Gimp.progress_set_text(text)
        if progress is None:
            Gimp.progress_pulse()
        else:
            Gimp.progress_update(min(max(progress, 0.0), 1.0))

    # ------------------------------------------------------------------------------------------

    def _select_users_layers(self) -> None:
        """Never leave a preview layer selected: GIMP 3.0.4 then logs criticals (or crashes) on the next undo."""
        selected = [layer for layer in self._image.get_selected_layers() if not is_preview_layer(layer)]
        if len(selected) != len(self._image.get_selected_layers()):
            users = selected or [layer for layer in self._image.get_layers() if not is_preview_layer(layer)][:1]
            self._image.undo_freeze()  # a selection of layers is not an edit either
            try:
                self._image.set_selected_layers(users)
            finally:
                self._image.undo_thaw()

    def _new_preview_layer(self, b: Rect) -> Gimp.Layer:
        selected = list(self._image.get_selected_layers())  # inserting the preview selects it: give it back
        self._image.undo_freeze()  # previews are not edits: keep them out of the undo history
        try:
            layer = Gimp.Layer.new(
                self._image, PREVIEW_LAYER_NAME, b.width, b.height, _layer_type(self._image), 100.0,
                Gimp.LayerMode.NORMAL,
            )
            layer.attach_parasite(Gimp.Parasite.new(PREVIEW_PARASITE, 0, b"1"))
            self._image.insert_layer(layer, None, 0)
            layer.set_offsets(b.x, b.y)
            layer.set_lock_position(True)
            if selected:
                self._image.set_selected_layers(selected)
        finally:
            self._image.undo_thaw()
        self._preview = layer
        return layer

    def _top_position(self) -> int:
        # below our own preview layer (which sits at 0 while a job runs), above everything else
        layers = self._image.get_layers()
        return 1 if layers and is_preview_layer(layers[0]) else 0

    @staticmethod
    def _write(layer: Gimp.Layer, pixels: Pixels) -> None:
        b = pixels.bounds
        buffer = layer.get_buffer()
        buffer.set(Gegl.Rectangle.new(0, 0, b.width, b.height), RGBA_FORMAT, pixels.data)
        buffer.flush()
        layer.update(0, 0, b.width, b.height)


def _stretch_into(layer: Gimp.Layer, pixels: Pixels) -> None:
    """Write a smaller preview frame stretched over the whole layer, resampled by GEGL (C speed).

    Needs ``Gegl.init`` in this process (the plug-in does it before a job).
    """
    small = pixels.data_extent
    source = Gegl.Buffer.new(RGBA_FORMAT, 0, 0, small.width, small.height)
    source.set(Gegl.Rectangle.new(0, 0, small.width, small.height), RGBA_FORMAT, pixels.data)
    graph = Gegl.Node.new()
    read = graph.create_child("gegl:buffer-source")
    read.set_property("buffer", source)
    scale = graph.create_child("gegl:scale-size")
    scale.set_property("x", float(pixels.bounds.width))
    scale.set_property("y", float(pixels.bounds.height))
    scale.set_property("sampler", Gegl.SamplerType.LINEAR)
    scale.set_property("abyss-policy", Gegl.AbyssPolicy.CLAMP)  # no transparent fringe at the edges
    target = layer.get_buffer()
    write = graph.create_child("gegl:write-buffer")
    write.set_property("buffer", target)
    read.link(scale)
    scale.link(write)
    write.process()
    target.flush()
    layer.update(0, 0, pixels.bounds.width, pixels.bounds.height)
