"""Planning and fetching against the fake Hub: sizes, skips, destinations, resume, damaged files, gated repos."""

from __future__ import annotations

import hashlib
import socket

import pytest
from conftest import GATED_WEIGHTS, TAESD_CONFIG, TAESD_WEIGHTS, WEIGHTS
from helpers.fake_hub import point_huggingface_hub_at
from latentbrush.backend.downloads.errors import DownloadError
from latentbrush.backend.downloads.fetch import download
from latentbrush.backend.downloads.plan import (
    INSTALLED,
    MISSING,
    PARTIAL,
    STAGING,
    item_state,
    make_plan,
    partial_name,
    set_state,
)

UPSCALER = "upscale/4x-tiny.safetensors"


@pytest.fixture
def models(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    return folder


@pytest.fixture
def small_chunks(monkeypatch):
    """huggingface_hub writes what it received in chunks of this size: small, so a cut leaves a partial file."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 16 * 1024)


def test_plan_takes_sizes_from_the_hub_and_fetches_a_folders_marker_last(hub, tiny_sets, models):
    plan = make_plan(tiny_sets[:1], models)
    assert [(f.dest, f.size) for f in plan.files] == [
        (UPSCALER, len(WEIGHTS)),  # the sets said 1 byte: the Hub's listing wins
        ("taesd/diffusion_pytorch_model.safetensors", len(TAESD_WEIGHTS)),
        ("taesd/config.json", len(TAESD_CONFIG)),  # the marker: last, so a half folder is never a model
    ]
    assert plan.total_bytes == len(WEIGHTS) + len(TAESD_WEIGHTS) + len(TAESD_CONFIG)
    assert plan.files[0].sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    assert plan.files[2].sha256 == "" and plan.files[2].blob_id  # a plain git file: checked by its blob id
    assert not any(f.present for f in plan.files)


def test_plan_skips_files_already_in_place_and_only_those(hub, tiny_sets, models):
    (models / "upscale").mkdir()
    (models / UPSCALER).write_bytes(WEIGHTS)
    (models / "taesd").mkdir()
    (models / "taesd/config.json").write_bytes(TAESD_CONFIG)
    damaged = bytearray(TAESD_WEIGHTS)
    damaged[7] ^= 0xFF  # right size, wrong bytes
    (models / "taesd/diffusion_pytorch_model.safetensors").write_bytes(bytes(damaged))
    plan = make_plan(tiny_sets[:1], models)
    assert {f.dest: f.present for f in plan.files} == {
        UPSCALER: True, "taesd/config.json": True, "taesd/diffusion_pytorch_model.safetensors": False}
    assert plan.total_bytes == len(TAESD_WEIGHTS)
    assert plan.present_bytes == len(WEIGHTS) + len(TAESD_CONFIG)


def test_download_puts_every_file_where_the_backend_looks(hub, tiny_sets, models):
    assert set_state(tiny_sets[0], models) == MISSING
    plan = make_plan(tiny_sets[:1], models)
    events = []
    download(plan, models, on_progress=events.append)
    assert (models / UPSCALER).read_bytes() == WEIGHTS
    assert (models / "taesd/diffusion_pytorch_model.safetensors").read_bytes() == TAESD_WEIGHTS
    assert (models / "taesd/config.json").read_bytes() == TAESD_CONFIG
    assert not (models / "taesd/taesd_decoder.pth").exists()  # not matched by the set's patterns
    assert set_state(tiny_sets[0], models) == INSTALLED
    overall = [e.overall_done for e in events]
    assert overall == sorted(overall) and overall[-1] == events[-1].overall_total == plan.total_bytes
    assert not list((models / STAGING).glob("*.part"))
    again = make_plan(tiny_sets[:1], models)  # a second run finds everything in place
    assert again.total_bytes == 0 and len(hub.gets("/weights/up.safetensors")) == 1


def test_an_interrupted_download_resumes_with_a_range_request(hub, tiny_sets, models, small_chunks):
    plan = make_plan(tiny_sets[:1], models)
    upscaler_only = type(plan)(plan.files[:1])
    hub.cut_next_get(100_000)  # the connection drops after 100 kB, and the Hub stays away
    with pytest.raises(DownloadError):
        download(upscaler_only, models)
    partial = models / STAGING / partial_name("fake/upscaler", "weights/up.safetensors")
    kept = partial.stat().st_size
    assert 0 < kept <= 100_000 and not (models / UPSCALER).exists()
    assert item_state(tiny_sets[0].items[0], models) == PARTIAL

    hub.restore()
    download(make_plan(tiny_sets[:1], models), models)
    last_get = hub.gets("/weights/up.safetensors")[-1]
    assert last_get.range == f"bytes={kept}-"
    assert hashlib.sha256((models / UPSCALER).read_bytes()).hexdigest() == hashlib.sha256(WEIGHTS).hexdigest()
    assert not partial.exists()


def test_a_damaged_download_is_deleted_and_reported(hub, tiny_sets, models):
    bad = bytearray(WEIGHTS)
    bad[-1] ^= 0xFF
    hub.repos["fake/upscaler"]["weights/up.safetensors"].serve_instead = bytes(bad)
    plan = make_plan(tiny_sets[:1], models)
    with pytest.raises(DownloadError, match=r"different from what the Hub publishes.*deleted"):
        download(plan, models)
    assert not (models / UPSCALER).exists()
    assert not list((models / STAGING).glob("*.part"))


def test_a_gated_repo_without_a_token_says_where_to_accept_the_licence(hub, tiny_sets, models):
    with pytest.raises(DownloadError) as caught:
        make_plan(tiny_sets[1:], models)
    message = str(caught.value)
    assert f"{hub.url}/fake/gated" in message and "accept" in message and "HF_TOKEN" in message
    assert not [r for r in hub.requests if "/resolve/" in r.path]  # said before any file is requested


def test_a_token_without_access_is_told_so_and_never_shown(hub, tiny_sets, models, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_not_accepted_456")
    plan = make_plan(tiny_sets[1:], models)
    with pytest.raises(DownloadError) as caught:
        download(plan, models)
    message = str(caught.value)
    assert "no access" in message and f"{hub.url}/fake/gated" in message
    assert "hf_not_accepted_456" not in message


def test_a_token_with_access_downloads_the_gated_file(hub, tiny_sets, models, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_accepted_token_123")
    download(make_plan(tiny_sets[1:], models), models)
    assert (models / "gated.safetensors").read_bytes() == GATED_WEIGHTS


def test_no_network_is_a_plain_message(monkeypatch, tmp_path, tiny_sets, models):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    point_huggingface_hub_at(f"http://127.0.0.1:{port}", monkeypatch, tmp_path / "hf-home")
    with pytest.raises(DownloadError, match="cannot reach the Hugging Face Hub"):
        make_plan(tiny_sets[:1], models)


def test_cache_mode_keeps_files_in_the_hugging_face_cache_and_links_them(hub, tiny_sets, models, tmp_path):
    download(make_plan(tiny_sets[:1], models), models, cache=True)
    dest = models / UPSCALER
    assert dest.read_bytes() == WEIGHTS
    cached = dest.resolve()
    assert cached.is_relative_to(tmp_path / "hf-home" / "hub") and cached != dest
    assert make_plan(tiny_sets[:1], models).total_bytes == 0


def test_an_empty_file_arrives_too(hub, models):
    from latentbrush.backend.downloads.sets import parse_sets

    hub.add("fake/empty", "added_tokens.json", b"", lfs=False)
    sets = parse_sets({"sets": [{"name": "e", "items": [
        {"repo": "fake/empty", "dest": "tok", "allow_patterns": ["*.json"], "size": 1, "licence": "mit"}]}]})
    download(make_plan(sets, models), models)
    assert (models / "tok/added_tokens.json").read_bytes() == b""
