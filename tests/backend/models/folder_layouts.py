"""Other apps' model trees as painters have them (A1111, Forge, ComfyUI, InvokeAI), with tiny but real files.

The files are real safetensors whose tensors carry the names and shapes the server's discovery reads (a
checkpoint's UNet input and text encoder, a LoRA's cross-attention, a ControlNet's hint block, ...), zero-filled
and a few bytes each; diffusers folders are their JSON configs. Nothing here is loaded as a network.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import torch
from latentbrush.backend.control.registry import HINT
from latentbrush.backend.models.detect import CONV_IN, SD1_TEXT, SDXL_BASE
from safetensors.torch import save_file

TO_K = "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn2_to_k"


def tensors(path: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({key: torch.zeros(shape, dtype=torch.float16) for key, shape in shapes.items()}, str(path))
    return path


def checkpoint(path: Path, *, xl: bool = False) -> Path:
    """An A1111-layout SD 1.5 (or SDXL) checkpoint as the detection sees it."""
    shapes = {CONV_IN: (4, 4, 1, 1), SD1_TEXT[0]: (1, 1)}
    if xl:
        shapes = {CONV_IN: (4, 4, 1, 1), SDXL_BASE: (1,)}
    return tensors(path, shapes)


def lora(path: Path) -> Path:
    """A kohya-layout SD 1.5 LoRA (768-wide cross-attention)."""
    return tensors(path, {f"{TO_K}.lora_down.weight": (2, 768), f"{TO_K}.lora_up.weight": (320, 2)})


def controlnet(path: Path) -> Path:
    """A diffusers-layout SD 1.5 ControlNet single file."""
    return tensors(path, {HINT: (1, 3, 1, 1)})


def upscaler(path: Path) -> Path:
    return tensors(path, {"body.0.weight": (1,)})


def embedding(path: Path) -> Path:
    """An A1111 SD 1.5 textual-inversion embedding."""
    return tensors(path, {"emb_params": (2, 768)})


def vae(path: Path) -> Path:
    return tensors(path, {"encoder.conv_in.weight": (1, 3, 1, 1), "decoder.conv_in.weight": (1, 4, 1, 1)})


def ip_adapter(path: Path) -> Path:
    """h94's SD 1.5 IP-Adapter file layout (basic kind, a 16-wide image embedding)."""
    return tensors(path, {"image_proj.proj.weight": (8, 16), "ip_adapter.1.to_k_ip.weight": (4, 768)})


def clip_vision(folder: Path) -> Path:
    """A transformers CLIP vision encoder folder (config and weights file)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "clip_vision_model", "projection_dim": 16,
                                                    "hidden_size": 32}))
    tensors(folder / "model.safetensors", {"x": (1,)})
    return folder


def diffusers_model(folder: Path, pipeline: str = "StableDiffusionPipeline") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model_index.json").write_text(json.dumps({"_class_name": pipeline}))
    (folder / "unet").mkdir(exist_ok=True)
    (folder / "unet" / "config.json").write_text(json.dumps({"in_channels": 4, "cross_attention_dim": 768}))
    return folder


def diffusers_controlnet(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"_class_name": "ControlNetModel"}))
    return folder


def taesd_folder(folder: Path) -> Path:
    """madebyollin's TAESD layout (what ``find_taesd`` looks for: the folder's config)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"_class_name": "AutoencoderTiny"}))
    return folder


def a1111_tree(root: Path, *, forge: bool = False) -> Path:
    """stable-diffusion-webui (or Forge) with a model of every kind."""
    models = root / "models"
    checkpoint(models / "Stable-diffusion" / "dreamy.safetensors")
    checkpoint(models / "Stable-diffusion" / "xl" / "juggernaut.safetensors", xl=True)
    lora(models / "Lora" / "detail.safetensors")
    lora(models / "LyCORIS" / "styles" / "ink.safetensors")
    controlnet(models / "ControlNet" / "control_v11p_sd15_canny.safetensors")
    upscaler(models / "ESRGAN" / "4x-UltraSharp.pth")
    upscaler(models / "RealESRGAN" / "RealESRGAN_x4plus.pth")
    vae(models / "VAE" / "vae-ft-mse.safetensors")
    embedding(root / "embeddings" / "mystyle.safetensors")
    (models / "VAE-approx").mkdir(parents=True)
    lineart = root / "extensions/sd-webui-controlnet/annotator/downloads/lineart"
    lineart.mkdir(parents=True)
    (lineart / "sk_model.pth").write_bytes(b"")
    if forge:
        (root / "modules_forge").mkdir()
        upscaler(models / "DAT" / "4x-DAT.safetensors")
    return root


def comfyui_tree(root: Path) -> Path:
    models = root / "models"
    checkpoint(models / "checkpoints" / "comfy-dreamy.safetensors")
    diffusers_model(models / "diffusers" / "comfy-diffusers")
    lora(models / "loras" / "comfy-detail.safetensors")
    controlnet(models / "controlnet" / "control_comfy_depth.safetensors")
    upscaler(models / "upscale_models" / "4x-comfy.safetensors")
    vae(models / "vae" / "sdxl_vae.safetensors")
    tensors(models / "vae_approx" / "taesd_decoder.safetensors", {"1.weight": (1,)})
    embedding(models / "embeddings" / "comfy-style.safetensors")
    clip_vision(models / "clip_vision" / "vit-tiny")
    ip_adapter(models / "ipadapter" / "ip-adapter_sd15.safetensors")
    (root / "comfy").mkdir(parents=True)
    return root


INVOKEAI_SCHEMA = """CREATE TABLE models (
    id TEXT NOT NULL PRIMARY KEY, base TEXT, type TEXT, path TEXT, format TEXT, name TEXT, config TEXT)"""


def invokeai_db(root: Path, rows: list[tuple[str | None, str]]) -> Path:
    """``databases/invokeai.db`` whose ``models`` table records ``(path, type)`` rows (as InvokeAI 4+ does)."""
    path = root / "databases" / "invokeai.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as db:
        db.execute(INVOKEAI_SCHEMA)
        db.executemany("INSERT INTO models (id, type, path, config) VALUES (?, ?, ?, '{}')",
                       [(f"key-{i}", kind, where) for i, (where, kind) in enumerate(rows)])
    db.close()
    return path


def invokeai_tree(root: Path) -> Path:
    models = root / "models"
    root.mkdir(parents=True, exist_ok=True)
    (root / "invokeai.yaml").write_text("# Internal metadata - do not edit:\nschema_version: 4.0.2\n")
    checkpoint(models / "sd-1" / "main" / "invoke-dreamy.safetensors")
    diffusers_model(models / "sdxl" / "main" / "stable-diffusion-xl-base-1-0", "StableDiffusionXLPipeline")
    lora(models / "sd-1" / "lora" / "invoke-ink.safetensors")
    diffusers_controlnet(models / "sd-1" / "controlnet" / "canny-invoke")
    clip_vision(models / "any" / "clip_vision" / "ip_adapter_sd_image_encoder")
    ip_adapter(models / "sd-1" / "ip_adapter" / "ip-adapter-plus_sd15.safetensors")
    embedding(models / "sd-1" / "embedding" / "invoke-style.safetensors")
    upscaler(models / "any" / "spandrel_image_to_image" / "4x-invoke.safetensors")
    taesd_folder(models / "sdxl" / "vae" / "taesdxl")
    return root
