"""LoRA discovery: the folders painters use, the family from the tensors, refusals with their reasons."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.lora_files import kohya_lora, write_lora
from latentbrush.backend.engine import Engine
from latentbrush.backend.lora.registry import LoraRegistry, detect
from latentbrush.backend.models.folders import ModelFolders
from latentbrush.backend.models.registry import ModelRegistry
from latentbrush.backend.models.tiny import build_tiny_sdxl
from latentbrush.protocol import ErrorCode, LoraInfo

TO_K = "down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"


def test_the_hello_lists_the_loras_and_embeddings_of_every_folder(lora_engine: Engine) -> None:
    info = lora_engine.describe()
    assert set(info.loras) == {LoraInfo("detail", "tiny"), LoraInfo("styles/unet-only", "tiny"),
                               LoraInfo("real-sd15", "sd15"), LoraInfo("xl-detail", "tiny-sdxl")}
    assert info.embeddings == ("mystyle",)
    refused = lora_engine.networks.loras.refused
    assert "cannot be loaded by diffusers" in refused["loha"] and "pickle" in refused["old"]
    assert "pickle" in lora_engine.networks.embeddings.refused["pickled"]


def test_lora_folders_are_not_scanned_as_checkpoints(lora_models: Path) -> None:
    registry = ModelRegistry(ModelFolders.from_models_dir(lora_models))
    assert {info.source for info in registry.infos()} == {"builtin"}  # no LoRA became a "model"
    assert registry.problem("Lora/older") is not None and registry.problem("Lora/older").code == ErrorCode.UNKNOWN_MODEL
    assert not any(name.startswith(("loras", "Lora", "LyCORIS", "embeddings")) for name in registry._refused)


@pytest.mark.parametrize(("shapes", "family"), [
    ({f"lora_unet_{TO_K}.lora_down.weight": (4, 768), "lora_te_text_model_x_q_proj.lora_down.weight": (4, 768)},
     "sd15"),
    ({"lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight": (4, 2048),
      "lora_te2_text_model_x_q_proj.lora_down.weight": (4, 1280)}, "sdxl"),
    # diffusers / peft layout
    ({"unet.down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.lora_A.weight": (8, 2048)}, "sdxl"),
    ({"lora_te1_text_model_x_q_proj.lora_down.weight": (4, 768),
      "lora_te2_text_model_x_q_proj.lora_down.weight": (4, 1280)}, "sdxl"),  # text encoders only
    ({"transformer.single_transformer_blocks.0.attn.to_k.lora_A.weight": (4, 3072)}, "flux"),
    ({"transformer.transformer_blocks.0.attn.add_k_proj.lora_A.weight": (4, 1536)}, "sd3"),
])
def test_the_family_comes_from_key_names_and_widths(shapes, family) -> None:
    found = detect(shapes)
    assert not isinstance(found, str) and found[0] == family


def test_locon_is_recognised_and_loha_and_sd2_are_refused() -> None:
    locon = detect({f"lora_unet_{TO_K}.lora_down.weight": (4, 768),
                    "lora_unet_down_blocks_0_resnets_0_conv1.lora_down.weight": (4, 320, 3, 3)})
    assert not isinstance(locon, str) and locon[2] == "locon"
    assert "2.x" in str(detect({f"lora_unet_{TO_K}.lora_down.weight": (4, 1024)}))
    assert "LoHa" in str(detect({f"lora_unet_{TO_K}.hada_w1_a": (4, 4)}))
    assert "not a LoRA" in str(detect({"model.diffusion_model.x.weight": (4, 4)}))
    assert "512-wide" in str(detect({f"lora_unet_{TO_K}.lora_down.weight": (4, 512)}))  # no model here has it


def test_tiny_sdxl_loras_are_of_the_tiny_sdxl_family(tmp_path: Path) -> None:
    pipe = build_tiny_sdxl(inpaint=False)
    write_lora(tmp_path / "loras", "xl", kohya_lora(pipe))
    write_lora(tmp_path / "loras", "xl-unet", kohya_lora(pipe, text_encoder=False))
    registry = LoraRegistry(ModelFolders.from_models_dir(tmp_path).loras)
    found = {e.name: (e.family, e.text_encoder, e.kind) for e in registry.entries()}
    assert found == {"xl": ("tiny-sdxl", True, "lora"), "xl-unet": ("tiny-sdxl", False, "lora")}


def test_unknown_and_refused_names_get_their_error_codes(lora_engine: Engine) -> None:
    loras = lora_engine.networks.loras
    unknown = loras.problem("nope", "job.loras[0].name")
    assert unknown is not None and (unknown.code, unknown.field) == (ErrorCode.BAD_FIELD, "job.loras[0].name")
    refused = loras.problem("loha", "job.loras[1].name")
    assert refused is not None and refused.code == ErrorCode.NOT_SUPPORTED and "LoHa" in refused.message


def test_a_truncated_file_is_refused_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "loras").mkdir()
    (tmp_path / "loras" / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    registry = LoraRegistry(ModelFolders.from_models_dir(tmp_path).loras)
    assert registry.entries() == () and "unreadable" in registry.refused["broken"]
