"""The Krita session keeps each document's history in its annotation (fake Krita; the real one: e2e)."""

from __future__ import annotations

import io
import json
import random
import zipfile

import fake_krita
import pytest
from latentbrush.plugin.core import history_archive as ha
from latentbrush.plugin.core.history import DONE, JobRecord, ResultImage
from latentbrush.plugin.core.host import Pixels
from latentbrush.plugin.core.planning import plan_region
from latentbrush.plugin.core.requests import GenerationSettings
from latentbrush.protocol.geometry import Rect, Size


@pytest.fixture
def session(app):
    from latentbrush.plugin.hosts.krita.session import KritaSession

    made = KritaSession()
    yield made
    made.shutdown()


def finish_job(session, doc, job_id: str, prompt: str, seed: int, bounds: Rect) -> Pixels:
    """What ``KritaSession._run`` does once a job added its layer: keep it for the history."""
    from latentbrush.plugin.hosts.krita.document import KritaHost
    from latentbrush.plugin.hosts.krita.session import JobResults

    pixels = Pixels(bounds, "bgra8", random.Random(seed).randbytes(bounds.width * bounds.height * 4))
    name = f"[Generated] {prompt} ({seed})"
    node = KritaHost(doc).add_result_layer(name, pixels)
    record = JobRecord(job_id, "inpaint", GenerationSettings(prompt=prompt, seed=seed, steps=6),
                       plan_region(Size(doc.width(), doc.height()), bounds), state=DONE, seed=seed,
                       results=(ResultImage(0, seed, bounds, name, node),))
    session.history.add(record)
    session._keep(record, JobResults(doc, [(name, pixels)], [node]))
    return pixels


def reopened(doc) -> fake_krita.Document:
    """A new document holding what a .kra keeps of ``doc``'s annotations."""
    again = fake_krita.Document(doc.width(), doc.height())
    for kind in doc.annotationTypes():
        again.setAnnotation(kind, doc.annotationDescription(kind), doc.annotation(kind))
    again.modified = False
    return again


def test_history_is_saved_in_the_document_and_applied_after_reopening(session, app):
    from latentbrush.plugin.hosts.krita.history_store import ANNOTATION_TYPE
    from latentbrush.plugin.hosts.krita.session import KritaSession

    doc = fake_krita.Document(128, 96)
    first = finish_job(session, doc, "job-a", "a boat", 1, Rect(4, 4, 40, 30))
    finish_job(session, doc, "job-b", "a kite", 2, Rect(50, 20, 40, 30))
    assert doc.annotationTypes() == [ANNOTATION_TYPE] and doc.modified

    other = KritaSession()  # another Krita run opens the saved document
    try:
        doc2 = reopened(doc)
        assert other.show_document(doc2, [doc2]) == "" and not doc2.modified  # reading changes nothing
        jobs = other.documents.jobs(doc2)
        assert [j.prompt for j in jobs] == ["a boat", "a kite"] and all(j.complete for j in jobs)
        assert other.thumbnail("job-a") is not None and other.document_of("job-a") is doc2
        assert other.apply("job-a")
        top = doc2.rootNode().childNodes()[-1]
        assert top.name() == "[Generated] a boat (1)" and doc2.history == ["Add Layer"]
        assert top.pixelData(*first.bounds.xywh()) == first.data
        other.delete("job-b")
        assert [j.job_id for j in ha.unpack(doc2.annotation(ANNOTATION_TYPE)).jobs] == ["job-a"]
        assert [n.name() for n in doc2.rootNode().childNodes()] == ["Background", "[Generated] a boat (1)"]
    finally:
        other.shutdown()


def test_a_lower_budget_drops_the_oldest_result_and_says_so(session, app):
    doc = fake_krita.Document(128, 96)
    for n, prompt in enumerate(("one", "two", "three")):
        finish_job(session, doc, f"job-{n}", prompt, n, Rect(0, 0, 60, 60))
    session.show_document(doc, [doc])
    notes = []
    session.history_note.connect(notes.append)
    jobs = session.documents.jobs(doc)
    room = len(ha.pack([j.without_pixels() for j in jobs], ha.MB).data) + jobs[-1].stored_bytes * 3 // 2
    session.set_history_budget(room / ha.MB, doc)
    assert [j.complete for j in session.documents.jobs(doc)] == [False, False, True]
    assert notes and "2 oldest" in notes[-1]
    assert session.results["job-0"].layers == []  # memory follows the document
    statuses = []
    session.status_changed.connect(lambda text, _p: statuses.append(text))
    assert not session.apply("job-0") and "not kept" in statuses[-1]


def test_damaged_and_newer_histories_never_break_opening(session, app):
    from latentbrush.plugin.hosts.krita.history_store import ANNOTATION_TYPE

    damaged = fake_krita.Document(64, 64)
    damaged.setAnnotation(ANNOTATION_TYPE, "", b"not a zip")
    assert "could not be read" in session.show_document(damaged, [damaged])
    newer = fake_krita.Document(64, 64)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(ha.MANIFEST, json.dumps({"format": ha.FORMAT, "version": ha.VERSION + 1, "jobs": []}))
    blob = out.getvalue()
    newer.setAnnotation(ANNOTATION_TYPE, "", blob)
    assert "newer latentbrush" in session.show_document(newer, [newer, damaged])
    finish_job(session, newer, "job-n", "x", 1, Rect(0, 0, 8, 8))
    assert newer.annotation(ANNOTATION_TYPE) == blob  # left as it was
