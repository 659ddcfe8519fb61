"""Reusing other apps' model folders in place (``--reuse``): A1111, Forge, ComfyUI (+ extra_model_paths.yaml),
InvokeAI (folders + its sqlite model records), and our own models folder as before."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from folder_layouts import (
    a1111_tree,
    checkpoint,
    comfyui_tree,
    invokeai_db,
    invokeai_tree,
    lora,
    upscaler,
    vae,
)
from latentbrush.backend.control.models import Controls
from latentbrush.backend.control.weights import find_file
from latentbrush.backend.engine import Engine, EngineSettings
from latentbrush.backend.lora.networks import Networks
from latentbrush.backend.models.folders import ModelFolders
from latentbrush.backend.models.registry import ModelRegistry
from latentbrush.backend.models.reuse import comfyui_extra_paths, recognise, reuse_folders
from latentbrush.backend.models.taesd import DECODER_FILE, DIFFUSERS, find_taesd
from latentbrush.backend.reference.models import References
from latentbrush.backend.upscale.registry import UpscalerRegistry


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def locations(folders: ModelFolders) -> dict[str, dict[str, str]]:
    """What each registry offers from ``folders``: kind -> name -> the path it reads (no engine needed)."""
    models = ModelRegistry(folders)
    networks = Networks(folders)
    controls = Controls(folders, "cpu", None)
    references = References(folders, "cpu", None)
    upscalers = UpscalerRegistry(folders.upscale)
    return {
        "models": {i.name: models.get(i.name).location for i in models.infos() if i.source != "builtin"},
        "loras": {e.name: e.location for e in networks.loras.entries()},
        "embeddings": {e.name: e.location for e in networks.embeddings.entries()},
        "controls": {e.name: e.location for e in controls.registry.entries()},
        "adapters": {e.name: e.location for e in references.registry.adapters()},
        "encoders": {e.name: e.location for e in references.registry.encoders()},
        "upscalers": {f.name: str(f.path) for f in upscalers.files()},
    }


# ---------------------------------------------------------------------------------------------- our own folder


def test_our_models_folder_gives_the_folders_it_always_had(tmp_path: Path) -> None:
    for name in ("loras", "Lora", "controlnet", "ipadapter", "clip_vision", "upscale", "upscale_models",
                 "embeddings", "vae_approx", "annotators", "vae"):
        (tmp_path / name).mkdir()
    folders = ModelFolders.from_models_dir(tmp_path)
    assert folders.checkpoints == (tmp_path,)  # scanned at its top, the others' sub-folders left out
    assert folders.loras == (tmp_path / "loras", tmp_path / "Lora")
    assert folders.controlnet == (tmp_path / "controlnet",) and folders.ipadapter == (tmp_path / "ipadapter",)
    assert folders.upscale == (tmp_path / "upscale", tmp_path / "upscale_models")
    assert folders.taesd == (tmp_path, tmp_path / "vae_approx")
    assert folders.annotators == (tmp_path / "annotators",) and folders.vae == (tmp_path / "vae",)
    assert ModelFolders.from_models_dir(None) == ModelFolders()


def test_a_missing_models_folder_gives_no_folders_and_says_so(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        assert ModelFolders.from_models_dir(tmp_path / "nope") == ModelFolders()
    assert "does not exist" in caplog.text


def test_a_checkpoint_in_a_vae_folder_is_never_offered(tmp_path: Path) -> None:
    checkpoint(tmp_path / "dreamy.safetensors")
    checkpoint(tmp_path / "vae" / "baked.safetensors")  # a VAE folder is never a checkpoint folder
    assert set(locations(ModelFolders.from_models_dir(tmp_path))["models"]) == {"dreamy"}


def test_merge_keeps_ours_first_then_the_trees_in_order_without_duplicates(tmp_path: Path) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    for p in (a, b, c):
        p.mkdir()
    ours, first, second = ModelFolders(loras=(a,)), ModelFolders(loras=(b, a)), ModelFolders(loras=(c, b))
    assert ours.merge(first, second).loras == (a, b, c)
    assert (ours + second + first).loras == (a, c, b)
    os.symlink(a, tmp_path / "link")
    assert ours.merge(ModelFolders(loras=(tmp_path / "link",))).loras == (a,)  # the same folder twice: once


# ---------------------------------------------------------------------------------------------- A1111 / Forge


def test_an_a1111_folder_is_used_in_place(tmp_path: Path) -> None:
    webui = a1111_tree(tmp_path / "stable-diffusion-webui")
    before = files_under(webui)
    tree = recognise(webui)
    assert tree.app == "A1111" and tree.root == webui
    found = locations(tree.folders)
    models = webui / "models"
    assert found["models"] == {"dreamy": str(models / "Stable-diffusion" / "dreamy.safetensors"),
                               "xl/juggernaut": str(models / "Stable-diffusion" / "xl" / "juggernaut.safetensors")}
    assert found["loras"] == {"detail": str(models / "Lora" / "detail.safetensors"),
                              "styles/ink": str(models / "LyCORIS" / "styles" / "ink.safetensors")}
    assert found["controls"] == {"control_v11p_sd15_canny": str(models / "ControlNet" /
                                                                "control_v11p_sd15_canny.safetensors")}
    assert found["upscalers"] == {"4x-UltraSharp.pth": str(models / "ESRGAN" / "4x-UltraSharp.pth"),
                                  "RealESRGAN_x4plus.pth": str(models / "RealESRGAN" / "RealESRGAN_x4plus.pth")}
    assert found["embeddings"] == {"mystyle": str(webui / "embeddings" / "mystyle.safetensors")}
    assert tree.folders.vae == (models / "VAE",) and models / "VAE-approx" in tree.folders.taesd
    assert find_file(tree.folders.annotators, "sk_model.pth") == (
        webui / "extensions/sd-webui-controlnet/annotator/downloads/lineart/sk_model.pth")
    assert files_under(webui) == before  # nothing written into the painter's tree


def test_the_webui_models_folder_and_forge_are_recognised(tmp_path: Path) -> None:
    webui = a1111_tree(tmp_path / "webui")
    assert recognise(webui / "models").root == webui
    assert reuse_folders(webui / "models") == reuse_folders(webui)
    package = tmp_path / "webui_forge_cu121"  # Forge's one-click package: the webui is inside
    forge = a1111_tree(package / "webui", forge=True)
    tree = recognise(package)
    assert tree.app == "Forge" and tree.root == forge
    assert "4x-DAT.safetensors" in locations(tree.folders)["upscalers"]


# ---------------------------------------------------------------------------------------------- ComfyUI


def test_a_comfyui_folder_is_used_in_place(tmp_path: Path) -> None:
    comfy = comfyui_tree(tmp_path / "ComfyUI")
    models = comfy / "models"
    for path in (comfy, models):
        tree = recognise(path)
        assert tree.app == "ComfyUI" and tree.root == comfy
    found = locations(reuse_folders(comfy))
    assert found["models"] == {"comfy-dreamy": str(models / "checkpoints" / "comfy-dreamy.safetensors"),
                               "comfy-diffusers": str(models / "diffusers" / "comfy-diffusers")}
    assert found["loras"] == {"comfy-detail": str(models / "loras" / "comfy-detail.safetensors")}
    assert found["controls"] == {"control_comfy_depth": str(models / "controlnet" /
                                                            "control_comfy_depth.safetensors")}
    assert found["upscalers"] == {"4x-comfy.safetensors": str(models / "upscale_models" / "4x-comfy.safetensors")}
    assert found["embeddings"] == {"comfy-style": str(models / "embeddings" / "comfy-style.safetensors")}
    assert found["adapters"] == {"ip-adapter_sd15": str(models / "ipadapter" / "ip-adapter_sd15.safetensors")}
    assert found["encoders"] == {"vit-tiny": str(models / "clip_vision" / "vit-tiny")}
    folders = reuse_folders(comfy)
    assert folders.vae == (models / "vae",)
    assert find_taesd("sd15", folders.taesd) is not None
    assert find_taesd("sd15", folders.taesd).kind == DECODER_FILE


EXTRA_PATHS = """\
# as ComfyUI's extra_model_paths.yaml.example has it: one section per other app
a111:
    base_path: ../elsewhere/webui/

    checkpoints: models/Stable-diffusion
    vae: models/VAE
    loras: |
         models/Lora
         models/LyCORIS
    upscale_models: |
                  models/ESRGAN
                  models/RealESRGAN
                  models/SwinIR
    embeddings: embeddings
    hypernetworks: models/hypernetworks
    controlnet: models/ControlNet

shared:
    checkpoints: shared-checkpoints
    loras: ~/home-loras
    upscale_models: $LB_TEST_UPSCALERS
    missing: nowhere
    clip: [not, a, path]
"""


def test_extra_model_paths_yaml_with_base_path_and_several_paths_a_line(tmp_path: Path, monkeypatch) -> None:
    webui = a1111_tree(tmp_path / "elsewhere" / "webui")
    comfy = comfyui_tree(tmp_path / "ComfyUI")
    checkpoint(comfy / "shared-checkpoints" / "shared.safetensors")  # no base_path: relative to the yaml file
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    lora(tmp_path / "home" / "home-loras" / "from-home.safetensors")
    monkeypatch.setenv("LB_TEST_UPSCALERS", str(tmp_path / "ups"))
    upscaler(tmp_path / "ups" / "2x-env.safetensors")
    (comfy / "extra_model_paths.yaml").write_text(EXTRA_PATHS)
    yaml_folders = comfyui_extra_paths(comfy / "extra_model_paths.yaml")
    models = webui / "models"
    assert yaml_folders.checkpoints == (models / "Stable-diffusion", comfy / "shared-checkpoints")
    assert yaml_folders.loras == (models / "Lora", models / "LyCORIS", tmp_path / "home" / "home-loras")
    assert yaml_folders.upscale == (models / "ESRGAN", models / "RealESRGAN", tmp_path / "ups")  # no SwinIR there
    assert recognise(comfy / "extra_model_paths.yaml").folders == yaml_folders  # the file itself, as --reuse
    found = locations(reuse_folders(comfy))  # the ComfyUI folder: its own models, then the file's
    assert list(found["models"]) == ["comfy-dreamy", "comfy-diffusers", "dreamy", "xl/juggernaut", "shared"]
    assert found["models"]["shared"] == str(comfy / "shared-checkpoints" / "shared.safetensors")
    assert found["loras"]["styles/ink"] == str(models / "LyCORIS" / "styles" / "ink.safetensors")
    assert found["loras"]["from-home"] == str(tmp_path / "home" / "home-loras" / "from-home.safetensors")
    assert found["upscalers"]["2x-env.safetensors"] == str(tmp_path / "ups" / "2x-env.safetensors")


def test_a_checkpoints_entry_over_the_whole_models_folder_skips_the_other_kinds(tmp_path: Path) -> None:
    root = tmp_path / "models"
    checkpoint(root / "dreamy.safetensors")
    checkpoint(root / "vae" / "baked-vae.safetensors")  # would read as a checkpoint; it is the VAE folder's
    lora(root / "my-loras" / "detail.safetensors")
    paths = tmp_path / "paths.yaml"
    paths.write_text("mine:\n  base_path: models\n  is_default: true\n  checkpoints: .\n  vae: vae\n"
                     "  loras: my-loras\n")
    found = locations(recognise(paths).folders)
    assert set(found["models"]) == {"dreamy"} and set(found["loras"]) == {"detail"}


@pytest.mark.parametrize(("text", "words"), [
    ("a: [unclosed", "cannot read"),
    ("- just\n- a list\n", "not a ComfyUI extra_model_paths.yaml"),
])
def test_an_unreadable_extra_paths_file_is_a_clear_error(tmp_path: Path, text: str, words: str) -> None:
    (tmp_path / "extra_model_paths.yaml").write_text(text)
    with pytest.raises(ValueError, match=words):
        recognise(tmp_path / "extra_model_paths.yaml")


def test_an_empty_extra_paths_file_or_section_gives_no_folders(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "sections.yaml").write_text("comfyui:\nother:\n  base_path: gone\n  checkpoints: models\n")
    assert comfyui_extra_paths(tmp_path / "empty.yaml") == ModelFolders()
    assert comfyui_extra_paths(tmp_path / "sections.yaml") == ModelFolders()  # missing folders are dropped


# ---------------------------------------------------------------------------------------------- InvokeAI


def test_an_invokeai_folder_and_its_model_records_are_used_in_place(tmp_path: Path, caplog) -> None:
    invoke = invokeai_tree(tmp_path / "invokeai")
    models = invoke / "models"
    in_place = checkpoint(tmp_path / "my-models" / "installed-in-place.safetensors")  # InvokeAI's "in place"
    keyed = lora(models / "4c1f8a2e" / "keyed-lora.safetensors")  # a record-only layout: models/<key>/<file>
    invokeai_db(invoke, [(str(in_place), "main"), ("4c1f8a2e/keyed-lora.safetensors", "lora"),
                         ("sd-1/main/invoke-dreamy.safetensors", "main"), ("x/y.bin", "t5_encoder"), (None, "vae")])
    with caplog.at_level(logging.WARNING):
        tree = recognise(invoke)
    assert tree.app == "InvokeAI" and not caplog.records
    found = locations(tree.folders)
    assert found["models"] == {
        "invoke-dreamy": str(models / "sd-1" / "main" / "invoke-dreamy.safetensors"),
        "stable-diffusion-xl-base-1-0": str(models / "sdxl" / "main" / "stable-diffusion-xl-base-1-0"),
        "installed-in-place": str(in_place),
    }
    assert found["loras"] == {"invoke-ink": str(models / "sd-1" / "lora" / "invoke-ink.safetensors"),
                              "keyed-lora": str(keyed)}
    assert found["controls"] == {"canny-invoke": str(models / "sd-1" / "controlnet" / "canny-invoke")}
    assert found["embeddings"] == {"invoke-style": str(models / "sd-1" / "embedding" / "invoke-style.safetensors")}
    assert found["encoders"] == {"ip_adapter_sd_image_encoder": str(models / "any" / "clip_vision" /
                                                                    "ip_adapter_sd_image_encoder")}
    assert found["adapters"] == {"ip-adapter-plus_sd15": str(models / "sd-1" / "ip_adapter" /
                                                             "ip-adapter-plus_sd15.safetensors")}
    assert found["upscalers"] == {"4x-invoke.safetensors": str(models / "any" / "spandrel_image_to_image" /
                                                               "4x-invoke.safetensors")}
    taesd = find_taesd("sdxl", tree.folders.taesd)
    assert taesd is not None and taesd.kind == DIFFUSERS and taesd.path == models / "sdxl" / "vae" / "taesdxl"


@pytest.mark.parametrize("database", ["garbage", "no models table"])
def test_an_unreadable_invokeai_database_falls_back_to_the_folders(tmp_path: Path, caplog, database: str) -> None:
    invoke = invokeai_tree(tmp_path / "invokeai")
    db = invoke / "databases" / "invokeai.db"
    db.parent.mkdir()
    if database == "garbage":
        db.write_bytes(b"this is not an sqlite database" * 10)
    else:
        import sqlite3

        with sqlite3.connect(db) as connection:
            connection.execute("CREATE TABLE other (x TEXT)")
        connection.close()
    with caplog.at_level(logging.WARNING):
        found = locations(reuse_folders(invoke))
    assert "cannot read InvokeAI's model records" in caplog.text
    assert set(found["models"]) == {"invoke-dreamy", "stable-diffusion-xl-base-1-0"}
    assert db.read_bytes() != b""  # read-only: left as it was


# ---------------------------------------------------------------------------------------------- detection, names


def test_an_unknown_or_missing_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "pictures").mkdir()
    with pytest.raises(ValueError, match=r"A1111 / Forge.*ComfyUI.*InvokeAI"):
        recognise(tmp_path / "pictures")
    with pytest.raises(ValueError, match="no such folder"):
        recognise(tmp_path / "gone")


def test_a_name_clash_keeps_ours_and_offers_the_reused_file_by_its_file_name(tmp_path: Path) -> None:
    ours = tmp_path / "models"
    checkpoint(ours / "dreamy.safetensors")
    webui = a1111_tree(tmp_path / "webui")
    found = locations(ModelFolders.from_models_dir(ours) + reuse_folders(webui))
    assert found["models"]["dreamy"] == str(ours / "dreamy.safetensors")  # the registry's rule, as before
    assert found["models"]["dreamy.safetensors"] == str(webui / "models" / "Stable-diffusion" / "dreamy.safetensors")


def test_our_folder_inside_a_reused_tree_offers_each_file_once(tmp_path: Path) -> None:
    comfy = comfyui_tree(tmp_path / "ComfyUI")
    folders = ModelFolders.from_models_dir(comfy / "models") + reuse_folders(comfy)
    found = locations(folders)
    assert set(found["models"]) == {"comfy-dreamy", "comfy-diffusers"}  # not also as "checkpoints/comfy-dreamy"
    vae(comfy / "models" / "vae" / "another.safetensors")
    assert "vae/another" not in locations(folders)["models"]


# ---------------------------------------------------------------------------------------------- the server


def test_the_server_offers_reused_models_from_reuse_arguments(tmp_path: Path, caplog) -> None:
    from latentbrush.backend.__main__ import build_parser, config_from_args, real_engine_factory

    webui = a1111_tree(tmp_path / "stable-diffusion-webui")
    comfy = comfyui_tree(tmp_path / "ComfyUI")
    (comfy / "extra_model_paths.yaml").write_text("mine:\n  base_path: ../mine\n  loras: loras\n")
    lora(tmp_path / "mine" / "loras" / "mine.safetensors")
    args = build_parser().parse_args(["--device", "cpu", "--reuse", str(webui / "models"),
                                      "--reuse", str(comfy / "extra_model_paths.yaml")])
    config = config_from_args(args)
    assert config.reuse == (webui, comfy / "extra_model_paths.yaml")
    with caplog.at_level(logging.INFO):
        engine = real_engine_factory(config)
    info = engine.describe()
    assert {"dreamy", "xl/juggernaut"} <= {m.name for m in info.models}
    assert info.default_model == "dreamy"
    assert {"detail", "styles/ink", "mine"} <= {lora.name for lora in info.loras}
    assert "4x-UltraSharp.pth" in info.upscalers and "mystyle" in info.embeddings
    assert "control_v11p_sd15_canny" in {c.name for c in info.controls}
    assert f"reusing A1111 models at {webui}: 1 checkpoint folder, 2 lora folders" in caplog.text
    assert "reusing ComfyUI models at" in caplog.text and "1 lora folder" in caplog.text


def test_a_wrong_reuse_path_is_a_usage_error(tmp_path: Path, capsys) -> None:
    from latentbrush.backend.__main__ import build_parser

    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["--reuse", str(tmp_path)])
    assert stopped.value.code == 2
    assert "--reuse" in capsys.readouterr().err


def test_engine_settings_take_reused_trees(tmp_path: Path) -> None:
    invoke = invokeai_tree(tmp_path / "invokeai")
    engine = Engine(EngineSettings(models_dir=None, reuse=(invoke,), device="cpu"))
    entry = engine.registry.get("invoke-dreamy")
    assert Path(entry.location).is_relative_to(invoke) and entry.base == "sd15"
