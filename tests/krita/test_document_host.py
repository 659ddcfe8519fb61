"""KritaHost (the document adapter) against the fake Krita document."""

from __future__ import annotations

import numpy as np
import pytest
from fake_krita import Document, Selection
from latentbrush.plugin.core.host import Pixels
from latentbrush.plugin.hosts.krita.colorspace import UnsupportedDocument
from latentbrush.plugin.hosts.krita.document import KritaHost
from latentbrush.plugin.hosts.krita.layers import (
    CURRENT_LAYER,
    ControlLayerMissing,
    LayerSource,
    node_id,
)
from latentbrush.plugin.hosts.krita.preview import PREVIEW_LAYER_NAME
from latentbrush.protocol.geometry import Rect, Size


def bgra(rgba: tuple[int, int, int, int], w: int, h: int) -> bytes:
    r, g, b, a = rgba
    return bytes((b, g, r, a)) * (w * h)


def painted_doc(w: int = 64, h: int = 48, depth: str = "U8") -> Document:
    """White canvas with a red 20x10 block at (10, 5) on a user layer."""
    doc = Document(w, h, depth=depth)
    layer = doc.createNode("user", "paintlayer")
    doc.rootNode().addChildNode(layer, None)
    data = bgra((255, 0, 0, 255), 20, 10)
    if depth == "U16":
        data = bytes(b for v in data for b in (v, v))
    layer.setPixelData(data, 10, 5, 20, 10)
    doc.refreshProjection()
    doc.undo_log.clear()
    return doc


def names(doc: Document) -> list[str]:
    return [n.name() for n in doc.rootNode().childNodes()]


def test_read_pixels_gives_bgra_of_the_visible_image(qapp):
    host = KritaHost(painted_doc())
    px = host.read_pixels(Rect(8, 5, 4, 1))
    assert px.format == "bgra8" and px.bounds == Rect(8, 5, 4, 1)
    assert px.data == bgra((255, 255, 255, 255), 2, 1) + bgra((255, 0, 0, 255), 2, 1)


def test_read_pixels_past_the_canvas_edge_is_transparent(qapp):
    # Krita itself answers white past the edge; the Host contract says transparent.
    host = KritaHost(painted_doc(w=16, h=8))
    px = host.read_pixels(Rect(-2, 6, 4, 3))
    rows = [px.data[i * 16 : (i + 1) * 16] for i in range(3)]
    assert rows[0] == bytes(8) + bgra((255, 255, 255, 255), 2, 1)
    assert rows[1] == bytes(8) + bgra((255, 255, 255, 255), 2, 1)
    assert rows[2] == bytes(16)  # y = 8 is below the canvas


def test_read_pixels_refreshes_the_projection_first(qapp):
    doc = painted_doc()
    user = doc.nodeByName("user")
    user.setPixelData(bgra((0, 0, 255, 255), 1, 1), 0, 0, 1, 1)  # not yet in the projection
    assert KritaHost(doc).read_pixels(Rect(0, 0, 1, 1)).data == bgra((0, 0, 255, 255), 1, 1)


def test_read_pixels_leaves_the_preview_out(qapp):
    doc = painted_doc()
    host = KritaHost(doc)
    host.show_preview(Pixels(Rect(0, 0, 64, 48), "bgra8", bgra((0, 255, 0, 255), 64, 48)))
    assert host.read_pixels(Rect(10, 5, 1, 1)).data == bgra((255, 0, 0, 255), 1, 1)
    assert host.preview.node.visible()  # shown again afterwards


def test_no_selection_and_empty_selection_are_none(qapp):
    doc = painted_doc()
    host = KritaHost(doc)
    assert host.selection() is None
    doc.setSelection(Selection())  # "deselect": size 0
    assert host.selection() is None


def test_selection_is_clipped_to_the_canvas(qapp):
    doc = painted_doc(w=64, h=48)
    sel = Selection()
    sel.select(-20, 40, 30, 20, 255)
    doc.setSelection(sel)
    got = KritaHost(doc).selection()
    assert got.bounds == Rect(0, 40, 10, 8)
    assert got.data == b"\xff" * 80


def test_selection_wholly_outside_the_canvas_is_none(qapp):
    doc = painted_doc()
    sel = Selection()
    sel.select(300, 300, 10, 10, 255)
    doc.setSelection(sel)
    assert KritaHost(doc).selection() is None


def test_feathered_selection_keeps_partial_coverage(qapp):
    doc = painted_doc()
    mask = np.array([[0, 64, 128], [64, 255, 200]], np.uint8)
    sel = Selection()
    sel.set_mask(5, 6, mask)
    doc.setSelection(sel)
    got = KritaHost(doc).selection()
    assert got.bounds == Rect(5, 6, 3, 2)
    assert got.data == mask.tobytes()


def test_preview_layer_is_one_locked_layer_at_the_frame_offset(qapp):
    doc = painted_doc()
    host = KritaHost(doc)
    for step in range(3):
        host.show_preview(Pixels(Rect(4, 4, 8, 8), "bgra8", bgra((step * 50, 0, 0, 255), 8, 8)))
    previews = [n for n in doc.rootNode().childNodes() if n.name() == PREVIEW_LAYER_NAME]
    assert len(previews) == 1 and previews[0].locked()
    assert names(doc)[-1] == PREVIEW_LAYER_NAME  # on top
    assert previews[0].bounds().getRect() == (4, 4, 8, 8)
    assert doc.pixelData(4, 4, 1, 1) == bgra((100, 0, 0, 255), 1, 1)
    assert host.preview.frames_shown == 3


def test_downscaled_preview_is_stretched_over_its_box(qapp):
    doc = painted_doc()
    host = KritaHost(doc)
    small = bgra((0, 0, 255, 255), 2, 2)
    host.show_preview(Pixels(Rect(10, 10, 16, 12), "bgra8", small, Size(2, 2)))
    assert host.preview.node.bounds().getRect() == (10, 10, 16, 12)
    assert doc.pixelData(25, 21, 1, 1) == bgra((0, 0, 255, 255), 1, 1)


def test_a_smaller_frame_clears_what_the_bigger_one_drew(qapp):
    doc = painted_doc()
    host = KritaHost(doc)
    host.show_preview(Pixels(Rect(0, 0, 30, 30), "bgra8", bgra((0, 255, 0, 255), 30, 30)))
    host.show_preview(Pixels(Rect(5, 5, 4, 4), "bgra8", bgra((0, 0, 255, 255), 4, 4)))
    assert host.preview.node.bounds().getRect() == (5, 5, 4, 4)


def test_single_result_reuses_the_preview_and_is_one_undo_step(qapp):
    doc = painted_doc()
    before = doc.projection_rgba().copy()
    host = KritaHost(doc)
    host.show_preview(Pixels(Rect(0, 0, 40, 30), "bgra8", bgra((0, 255, 0, 255), 40, 30)))
    result = Pixels(Rect(12, 8, 6, 4), "rgba8", bytes((9, 8, 7, 255)) * 24)
    node = host.add_result_layer("[Generated] cat (7)", result)
    host.remove_preview()  # the controller always calls it at the end of a job
    assert names(doc) == ["Background", "user", "[Generated] cat (7)"]
    assert node.bounds().getRect() == (12, 8, 6, 4) and not node.locked()
    assert doc.pixelData(12, 8, 1, 1) == bytes((7, 8, 9, 255))  # rgba8 in, bgra in Krita
    assert doc.history == ["Add Layer"]
    after = doc.projection_rgba()
    outside = np.ones(after.shape[:2], bool)
    outside[8:12, 12:18] = False
    assert np.array_equal(after[outside], before[outside])  # nothing else changed
    doc.undo()
    assert names(doc) == ["Background", "user"]
    assert np.array_equal(doc.projection_rgba(), before)


def test_result_without_preview_is_a_new_layer(qapp):
    doc = painted_doc()
    host = KritaHost(doc)
    host.add_result_layer("r", Pixels(Rect(1, 2, 3, 4), "bgra8", bgra((1, 2, 3, 255), 3, 4)))
    assert names(doc) == ["Background", "user", "r"]
    assert doc.nodeByName("r").bounds().getRect() == (1, 2, 3, 4)
    assert doc.history == ["Add Layer"]


def test_cancel_removes_the_preview_and_leaves_nothing_visible_to_undo_back(qapp):
    doc = painted_doc()
    before = doc.projection_rgba().copy()
    host = KritaHost(doc)
    host.show_preview(Pixels(Rect(0, 0, 8, 8), "bgra8", bgra((0, 255, 0, 255), 8, 8)))
    host.remove_preview()
    assert PREVIEW_LAYER_NAME not in names(doc)
    assert np.array_equal(doc.projection_rgba(), before)
    assert doc.history == ["Add Layer", "Remove Layer"]
    doc.undo()  # brings the preview node back: it must be empty and hidden
    back = doc.nodeByName(PREVIEW_LAYER_NAME)
    assert back is not None and not back.visible() and back.bounds().isEmpty()
    assert np.array_equal(doc.projection_rgba(), before)


def test_preview_removed_by_undo_mid_job_is_recreated(qapp):
    doc = painted_doc()
    host = KritaHost(doc)
    host.show_preview(Pixels(Rect(0, 0, 4, 4), "bgra8", bgra((0, 255, 0, 255), 4, 4)))
    doc.undo()  # the painter pressed Ctrl+Z while the job ran
    assert host.preview.node is None
    host.show_preview(Pixels(Rect(0, 0, 4, 4), "bgra8", bgra((0, 255, 0, 255), 4, 4)))
    assert names(doc).count(PREVIEW_LAYER_NAME) == 1


def test_batch_results_become_one_group_in_one_undo_step(qapp):
    doc = painted_doc()
    host = KritaHost(doc, batch=3, group_name="[Generated] cat (batch)")
    host.show_preview(Pixels(Rect(0, 0, 4, 4), "bgra8", bgra((0, 255, 0, 255), 4, 4)))
    handles = [
        host.add_result_layer(f"r{i}", Pixels(Rect(2, 2, 2, 2), "bgra8", bgra((i, 0, 0, 255), 2, 2)))
        for i in range(3)
    ]
    assert handles[:2] == [None, None] and handles[2] is host.group
    host.remove_preview()
    assert names(doc) == ["Background", "user", "[Generated] cat (batch)"]
    assert [n.name() for n in host.group.childNodes()] == ["r0", "r1", "r2"]
    assert doc.history == ["Add Layer", "Remove Layer", "Add Layer"]  # preview in/out, then the group
    doc.undo()
    assert names(doc) == ["Background", "user"]


def test_batch_cut_short_still_groups_what_arrived(qapp):
    doc = painted_doc()
    host = KritaHost(doc, batch=4, group_name="g")
    host.add_result_layer("r0", Pixels(Rect(0, 0, 1, 1), "bgra8", bgra((1, 1, 1, 255), 1, 1)))
    host.remove_preview()
    assert names(doc)[-1] == "g" and [n.name() for n in host.group.childNodes()] == ["r0"]


def test_resize_canvas_scales_the_document_in_one_step(qapp):
    doc = painted_doc(w=32, h=16)
    host = KritaHost(doc)
    host.show_preview(Pixels(Rect(0, 0, 4, 4), "bgra8", bgra((0, 255, 0, 255), 4, 4)))
    host.resize_canvas(Size(64, 32))
    assert (doc.width(), doc.height()) == (64, 32)
    assert PREVIEW_LAYER_NAME not in names(doc)
    assert doc.history[-1] == "Scale Image"
    node = host.add_result_layer("[Upscaled]", Pixels(Rect(0, 0, 64, 32), "bgra8", bgra((5, 5, 5, 255), 64, 32)))
    assert node.bounds().getRect() == (0, 0, 64, 32)


def test_sixteen_bit_documents_are_read_and_written_as_8_bit(qapp):
    doc = painted_doc(depth="U16")
    host = KritaHost(doc)
    assert host.read_pixels(Rect(10, 5, 1, 1)).data == bgra((255, 0, 0, 255), 1, 1)
    node = host.add_result_layer("r", Pixels(Rect(0, 0, 1, 1), "bgra8", bytes((1, 2, 128, 255))))
    assert node.pixelData(0, 0, 1, 1) == bytes((1, 1, 2, 2, 128, 128, 255, 255))  # v * 257, little-endian


@pytest.mark.parametrize(("model", "depth"), [("CMYKA", "U8"), ("GRAYA", "U8"), ("RGBA", "F32"), ("LABA", "U16")])
def test_unsupported_colour_spaces_get_a_clear_message(qapp, model, depth):
    host = KritaHost(Document(8, 8, model=model, depth=depth if depth != "F32" else "U8"))
    host._doc._depth = depth  # the fake stores pixels as integers; only the reported space matters here
    with pytest.raises(UnsupportedDocument, match=rf"{model}/{depth}.*Convert Image Color Space"):
        host.read_pixels(Rect(0, 0, 2, 2))


def test_status_goes_to_the_sink(qapp):
    seen = []
    KritaHost(painted_doc(), status=lambda text, progress: seen.append((text, progress))).report_status("step 2/4", 0.5)
    assert seen == [("step 2/4", 0.5)]


def test_wrong_buffer_size_names_the_field(qapp):
    host = KritaHost(painted_doc())
    with pytest.raises(ValueError, match=r"pixels\.data"):
        host.add_result_layer("r", Pixels(Rect(0, 0, 2, 2), "bgra8", b"\0" * 3))


class FakeUndoSteps:
    """Edit > Undo / Redo over the fake document's undo log (what ``KritaUndoSteps`` triggers in Krita)."""

    def __init__(self) -> None:
        self.redo_stack: list = []

    def undo(self, doc) -> bool:
        if not doc.undo_log:
            return False
        step = doc.undo_log.pop()
        step[1]()
        self.redo_stack.append(step)
        return True

    def redo(self, doc) -> None:
        step = self.redo_stack.pop()
        step[2]()
        doc.undo_log.append(step)


def test_a_job_without_result_leaves_no_undo_step(qapp):
    doc = painted_doc()
    before, history = doc.projection_rgba().copy(), doc.history
    host = KritaHost(doc, undo_steps=FakeUndoSteps())
    host.show_preview(Pixels(Rect(0, 0, 40, 30), "bgra8", bgra((0, 255, 0, 255), 40, 30)))
    assert names(doc) == ["Background", "user", PREVIEW_LAYER_NAME] and doc.history == [*history, "Add Layer"]
    host.remove_preview()  # cancelled or failed
    assert names(doc) == ["Background", "user"] and doc.history == history
    assert np.array_equal(doc.projection_rgba(), before)


def test_a_painter_step_after_the_preview_is_kept_and_the_preview_removed_the_usual_way(qapp):
    doc = painted_doc()
    history = doc.history
    steps = FakeUndoSteps()
    host = KritaHost(doc, undo_steps=steps)
    host.show_preview(Pixels(Rect(0, 0, 40, 30), "bgra8", bgra((0, 255, 0, 255), 40, 30)))
    mine = doc.createNode("painted during the job", "paintlayer")
    doc.rootNode().addChildNode(mine, None)
    host.remove_preview()
    assert names(doc) == ["Background", "user", "painted during the job"]
    assert doc.history == [*history, "Add Layer", "Add Layer", "Remove Layer"] and not steps.redo_stack


# ----------------------------------------------------------------------------- control layers


def control_doc(depth: str = "U8") -> tuple[Document, object]:
    """``painted_doc`` with a hidden "lines" layer under "user": one dark pixel at (12, 6), the rest transparent."""
    doc = painted_doc(depth=depth)
    lines = doc.createNode("lines", "paintlayer")
    doc.rootNode().addChildNode(lines, doc.rootNode().childNodes()[0])  # above the background, under "user"
    data = bgra((20, 30, 40, 255), 1, 1)
    if depth == "U16":
        data = bytes(b for v in data for b in (v, v))
    lines.setPixelData(data, 12, 6, 1, 1)
    lines.setVisible(False)
    doc.refreshProjection()
    return doc, lines


def test_read_control_gives_the_layers_own_pixels_even_hidden(qapp):
    doc, lines = control_doc()
    px = KritaHost(doc).read_control(LayerSource(node_id(lines), "lines"), Rect(11, 6, 3, 1))
    assert px.format == "bgra8" and px.bounds == Rect(11, 6, 3, 1)
    # the layer alone: transparent around its pixel, not the red block of "user" over it nor the white background
    assert px.data == bytes(4) + bgra((20, 30, 40, 255), 1, 1) + bytes(4)
    assert not lines.visible()  # read as it is, left as it was


def test_read_control_past_the_canvas_edge_is_transparent(qapp):
    doc, lines = control_doc()
    lines.setPixelData(bgra((1, 2, 3, 255), 64, 48), 0, 0, 64, 48)
    px = KritaHost(doc).read_control(LayerSource(node_id(lines), "lines"), Rect(62, 46, 4, 3))
    rows = [px.data[i * 16 : (i + 1) * 16] for i in range(3)]
    assert rows[0] == bgra((1, 2, 3, 255), 2, 1) + bytes(8)
    assert rows[1] == bgra((1, 2, 3, 255), 2, 1) + bytes(8)
    assert rows[2] == bytes(16)


def test_read_control_of_a_16_bit_layer_is_8_bit(qapp):
    doc, lines = control_doc(depth="U16")
    px = KritaHost(doc).read_control(LayerSource(node_id(lines), "lines"), Rect(12, 6, 1, 1))
    assert px.data == bgra((20, 30, 40, 255), 1, 1)


def test_read_control_resolves_the_current_layer(qapp):
    doc, lines = control_doc()
    host = KritaHost(doc)
    doc.setActiveNode(lines)
    assert host.read_control(CURRENT_LAYER, Rect(12, 6, 1, 1)).data == bgra((20, 30, 40, 255), 1, 1)
    doc.setActiveNode(None)
    with pytest.raises(ControlLayerMissing, match="No layer is selected"):
        host.read_control(CURRENT_LAYER, Rect(0, 0, 1, 1))


def test_read_control_of_a_deleted_layer_names_it(qapp):
    doc, lines = control_doc()
    source = LayerSource(node_id(lines), "lines")
    lines.remove()
    with pytest.raises(ControlLayerMissing, match="The control layer 'lines' no longer exists"):
        KritaHost(doc).read_control(source, Rect(0, 0, 4, 4))
    assert names(doc) == ["Background", "user"]
