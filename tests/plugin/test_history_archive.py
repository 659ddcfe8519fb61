"""The history archive kept in documents: round trip, size budget, damaged and newer archives, search."""

from __future__ import annotations

import io
import json
import random
import zipfile

import pytest
from latentbrush.plugin.core import history_archive as ha
from latentbrush.plugin.core.history import DONE, JobRecord, ResultImage
from latentbrush.plugin.core.host import Pixels
from latentbrush.plugin.core.planning import plan_region
from latentbrush.plugin.core.requests import GenerationSettings
from latentbrush.protocol.geometry import Rect, Size


def noise(bounds: Rect, seed: int) -> Pixels:
    """Incompressible pixels, so archive sizes are predictable."""
    return Pixels(bounds, "bgra8", random.Random(seed).randbytes(bounds.width * bounds.height * 4))


def record(job_id: str, prompt: str, seeds: tuple[int, ...], bounds: Rect) -> JobRecord:
    settings = GenerationSettings(prompt=prompt, negative_prompt="blurry", model="tiny", sampler="Euler a", steps=6,
                                  cfg=5.5, seed=seeds[0], strength=0.75)
    plan = plan_region(Size(512, 384), bounds, 0.75)
    results = tuple(ResultImage(i, s, bounds, f"[Generated] {prompt} ({s})") for i, s in enumerate(seeds))
    return JobRecord(job_id, "img2img", settings, plan, state=DONE, created=100.0, finished=103.5, seed=seeds[0],
                     results=results, info={"model": "tiny-sd"}, server="test on cpu")


def job(job_id: str, prompt: str = "a red boat", seeds: tuple[int, ...] = (7,), side: int = 64) -> ha.ArchivedJob:
    bounds = Rect(10, 20, side, side)
    rec = record(job_id, prompt, seeds, bounds)
    layers = [(r.layer_name, noise(bounds, ord(job_id[0]) * 10 + r.index)) for r in rec.results]
    return ha.archive_job(rec, layers, group_name="[Generated] batch" if len(seeds) > 1 else "")


def test_round_trip_keeps_parameters_thumbnails_and_exact_pixels():
    jobs = [job("a", "a red boat"), job("b", "a green hill", seeds=(1, 2))]
    packed = ha.pack(jobs, 50 * ha.MB)
    assert packed.dropped == () and packed.message() == ""
    back = ha.unpack(packed.data)
    assert back.message == "" and not back.read_only
    assert [j.job_id for j in back.jobs] == ["a", "b"]
    b = back.jobs[1]
    p = b.parameters
    assert (p["prompt"], p["negative_prompt"], p["model"], p["sampler"], p["steps"], p["cfg"], p["strength"]) == (
        "a green hill", "blurry", "tiny-sd", "Euler a", 6, 5.5, 0.75)
    assert p["seeds"] == [1, 2] and b.group_name == "[Generated] batch" and b.finished == 103.5
    assert [(i.layer_name, i.seed, i.bounds) for i in b.images] == [
        ("[Generated] a green hill (1)", 1, Rect(10, 20, 64, 64)), ("[Generated] a green hill (2)", 2,
                                                                    Rect(10, 20, 64, 64))]
    assert ha.decode_layers(b, {"zlib": ha.ZLIB}) == ha.decode_layers(jobs[1], {"zlib": ha.ZLIB})
    assert b.thumbnail is not None and b.thumbnail.width == 64  # no bigger than the result
    assert ha.pack(back.jobs, 50 * ha.MB).data == packed.data  # stable bytes: reading and writing changes nothing


def test_the_manifest_describes_every_file():
    packed = ha.pack([job("a")], ha.MB)
    with zipfile.ZipFile(io.BytesIO(packed.data)) as z:
        manifest = json.loads(z.read(ha.MANIFEST))
        image = manifest["jobs"][0]["images"][0]["image"]
        assert (manifest["format"], manifest["version"]) == ("latentbrush-history", 1)
        assert image == {"path": "jobs/0/0.zlib", "encoding": "zlib", "format": "bgra8", "width": 64, "height": 64}
        assert set(z.namelist()) == {ha.MANIFEST, "jobs/0/0.zlib", "jobs/0/thumbnail.zlib"}


def test_budget_drops_the_oldest_full_results_first_and_says_so():
    jobs = [job(name, side=200) for name in "abcd"]  # 160 kB of pixels each, thumbnails 64 kB
    thumbnails_only = len(ha.pack([j.without_pixels() for j in jobs], ha.MB).data)
    budget = thumbnails_only + jobs[0].stored_bytes * 5 // 2  # room for two and a half full results
    packed = ha.pack(jobs, budget)
    assert len(packed.data) <= budget and not packed.over_budget
    assert packed.dropped == ("a", "b")
    assert [j.complete for j in packed.jobs] == [False, False, True, True]
    assert all(j.thumbnail is not None for j in packed.jobs)
    assert "2 oldest" in packed.message() and "thumbnails and parameters are kept" in packed.message()
    back = ha.unpack(packed.data).jobs
    assert [j.complete for j in back] == [False, False, True, True]
    assert back[0].parameters["prompt"] == "a red boat" and back[0].images[0].layer_name
    with pytest.raises(ValueError, match="was not kept"):
        ha.decode_layers(back[0], {"zlib": ha.ZLIB})
    # results dropped by an earlier pack are not reported again
    again = ha.pack(packed.jobs, budget)
    assert again.dropped == () and again.message() == "" and again.data == packed.data


def test_thumbnails_alone_over_the_budget_are_reported():
    packed = ha.pack([job("a")], 100)
    assert packed.dropped == ("a",) and packed.over_budget
    assert "thumbnails alone" in packed.message()


def test_missing_damaged_or_newer_archives_never_raise():
    assert ha.unpack(b"").jobs == () and "could not be read" in ha.unpack(b"").message
    assert "could not be read" in ha.unpack(b"PK\x03\x04garbage").message
    good = ha.pack([job("a"), job("b")], ha.MB).data

    def rewrite(change) -> bytes:
        src = zipfile.ZipFile(io.BytesIO(good))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as dst:
            for name in src.namelist():
                data = src.read(name)
                if name == ha.MANIFEST:
                    manifest = json.loads(data)
                    change(manifest)
                    data = json.dumps(manifest).encode()
                dst.writestr(name, data)
        return out.getvalue()

    newer = ha.unpack(rewrite(lambda m: m.update(version=99)))
    assert newer.jobs == () and newer.read_only and "newer latentbrush" in newer.message
    other = ha.unpack(rewrite(lambda m: m.update(format="something else")))
    assert other.jobs == () and not other.read_only and "could not be read" in other.message
    broken = ha.unpack(rewrite(lambda m: m["jobs"][0]["images"][0]["image"].update(path="missing.zlib")))
    assert [j.job_id for j in broken.jobs] == ["b"] and "1 damaged job" in broken.message


def test_thumbnail_size_and_sampling():
    assert ha.thumbnail_size(Size(512, 256)) == Size(128, 64)
    assert ha.thumbnail_size(Size(40, 30)) == Size(40, 30)
    assert ha.thumbnail_size(Size(2000, 1)) == Size(128, 1)
    # a 4 x 2 image of distinct pixels, sampled to 2 x 1: every other pixel of the top row
    data = bytes(range(32))
    thumb = ha.sample_thumbnail(Pixels(Rect(5, 5, 4, 2), "rgba8", data), 2)
    assert thumb.bounds == Rect(0, 0, 2, 1) and thumb.data == data[0:4] + data[8:12]


def test_search_by_prompt_matches_every_word_ignoring_case():
    assert ha.matches("A Wooden boat on a lake", "boat LAKE")
    assert not ha.matches("A wooden boat", "boat lake")
    assert ha.matches("anything", "  ")
