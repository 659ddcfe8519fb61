"""The shipped model sets are well formed and point where the backend looks; malformed data is refused."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from latentbrush.backend.downloads.sets import SetsError, load_sets, parse_sets, select
from latentbrush.backend.models.folders import (
    ANNOTATORS,
    CONTROL_FOLDERS,
    ENCODER_FOLDERS,
    REFERENCE_FOLDERS,
    UPSCALE_FOLDERS,
)

TAESD_FOLDERS = ("taesd", "taesdxl", "taesd3", "taef1")  # models/taesd.py: TAESD_NAMES (that module needs torch)


def test_shipped_sets_are_well_formed():
    sets = load_sets()
    names = [s.name for s in sets]
    assert {"sd15", "sdxl", "sd35", "flux-schnell", "upscalers", "taesd", "controlnets", "ip-adapter"} <= set(names)
    dests = [item.dest for s in sets for item in s.items]
    assert len(dests) == len(set(dests))
    for s in sets:
        for item in s.items:
            assert item.repo.count("/") == 1 and item.licence and item.size > 0
            assert item.file or item.allow_patterns
            if item.is_folder:
                assert item.marker in ("model_index.json", "config.json")


def test_shipped_destinations_are_where_the_backend_looks():
    kinds = (*UPSCALE_FOLDERS, *CONTROL_FOLDERS, *REFERENCE_FOLDERS, *ENCODER_FOLDERS, ANNOTATORS.as_posix())
    for s in load_sets():
        for item in s.items:
            dest = PurePosixPath(item.dest)
            if len(dest.parts) == 1:  # the top of the models folder: checkpoints, diffusers folders, TAESDs
                assert dest.suffix == ".safetensors" or item.marker == "model_index.json" or item.dest in TAESD_FOLDERS
            else:
                assert dest.parts[0] in kinds, item.dest


def test_gated_and_large_sets_say_so():
    by_name = {s.name: s for s in load_sets()}
    assert by_name["sd35"].gated and "HF_TOKEN" in by_name["sd35"].description
    flux = by_name["flux-schnell"]
    assert not flux.gated and flux.licences == ("apache-2.0",) and flux.items[0].is_folder
    assert flux.size > 20_000_000_000


def _one(**item):
    base = {"repo": "a/b", "file": "x.safetensors", "dest": "x.safetensors", "size": 5, "licence": "mit"}
    return {"sets": [{"name": "s", "items": [{**base, **item}]}]}


@pytest.mark.parametrize("item, words", [
    ({"size": 0}, "size"),
    ({"dest": "/etc/x"}, "relative"),
    ({"dest": "../x"}, "relative"),
    ({"allow_patterns": ["*.json"]}, "either file or allow_patterns"),
    ({"sha256": "abc"}, "64"),
    ({"repo": "noslash"}, "owner/name"),
])
def test_malformed_items_are_refused(item, words):
    with pytest.raises(SetsError, match=words):
        parse_sets(_one(**item))


def test_a_destination_used_twice_is_refused():
    data = _one()
    data["sets"].append({"name": "t", "items": data["sets"][0]["items"]})
    with pytest.raises(SetsError, match="also a destination"):
        parse_sets(data)


def test_unknown_set_names_list_the_known_ones():
    sets = parse_sets(_one())
    with pytest.raises(SetsError, match=r"unknown set nope \(known: s\)"):
        select(sets, ["nope"])
