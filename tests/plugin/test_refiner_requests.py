"""The SDXL refiner in the plugin (SPEC.md 9.13): settings -> JobRequest, the CLI flags, the hello's refiner list."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from latentbrush.plugin.cli.commands import settings_from
from latentbrush.plugin.cli.main import build_parser
from latentbrush.plugin.core.planning import plan_generate, plan_region, plan_whole_canvas
from latentbrush.plugin.core.requests import (
    GenerationSettings,
    build_request,
    is_refiner,
    new_job_id,
    refiners_for,
)
from latentbrush.protocol import (
    Limits,
    ModelInfo,
    ServerHello,
    Submit,
    as_v1_0,
    blob_hash,
    decode_client_message,
    encode_message,
)
from latentbrush.protocol.geometry import Rect, Size
from PIL import Image

IMAGE, MASK = blob_hash(b"image"), blob_hash(b"mask")
MODELS = (
    ModelInfo("juggernaut-xl", "sdxl", False, 1024), ModelInfo("sd_xl_refiner_1.0", "sdxl-refiner", False, 1024),
    ModelInfo("dreamshaper-8", "sd15", False, 512), ModelInfo("tiny-sdxl", "tiny-sdxl", False, 256),
    ModelInfo("tiny-sdxl-refiner", "tiny-sdxl-refiner", False, 256),
)


def hello(default: str = "juggernaut-xl") -> ServerHello:
    return ServerHello(protocol=1, minor=1, server="test", client_id="c", resumed=False, device="cpu",
                       dtype="float32", models=MODELS, upscalers=("lanczos",), samplers=("Euler",),
                       limits=Limits(1 << 24, 1 << 24, 8, 4, 150), default_model=default)


def job_for(op: str, settings: GenerationSettings):
    canvas = Size(640, 480)
    plan = plan_whole_canvas(canvas) if op == "upscale" else plan_region(canvas, Rect(100, 100, 200, 160))
    if op == "txt2img":
        plan = plan_generate(plan)
    return build_request(op, plan, settings, job_id=new_job_id(), image=IMAGE, mask=MASK)


@pytest.mark.parametrize("op", ["txt2img", "img2img", "inpaint"])
def test_the_refiner_reaches_every_diffusion_job(op: str) -> None:
    settings = GenerationSettings(model="juggernaut-xl", refiner="sd_xl_refiner_1.0", refiner_at=0.7,
                                  strength=0.6 if op == "img2img" else 1.0)
    job = job_for(op, settings)
    assert (job.refiner, job.refiner_at) == ("sd_xl_refiner_1.0", 0.7)
    decoded = decode_client_message(encode_message(Submit(job)))
    assert isinstance(decoded, Submit) and decoded.job == job  # survives the codec
    default_at = job_for(op, GenerationSettings(refiner="sd_xl_refiner_1.0", strength=settings.strength))
    assert default_at.refiner_at is None  # absent: the protocol's 0.8


@pytest.mark.parametrize("op", ["txt2img", "img2img", "inpaint", "upscale"])
def test_no_refiner_means_no_field_so_a_1_0_server_takes_the_job(op: str) -> None:
    job = job_for(op, GenerationSettings(strength=0.5 if op == "img2img" else 1.0, refiner_at=0.6))
    assert job.refiner is None and job.refiner_at is None
    assert not isinstance(as_v1_0(job), Exception)


def test_an_upscale_carries_no_refiner() -> None:
    job = job_for("upscale", GenerationSettings(refiner="sd_xl_refiner_1.0", refiner_at=0.7))
    assert job.refiner is None and job.refiner_at is None  # SPEC.md 9.13: txt2img, img2img and inpaint only


def test_refiners_fit_the_models_base() -> None:
    assert [m.name for m in MODELS if is_refiner(m)] == ["sd_xl_refiner_1.0", "tiny-sdxl-refiner"]
    assert refiners_for(hello(), "juggernaut-xl") == ("sd_xl_refiner_1.0",)
    assert refiners_for(hello(), "") == ("sd_xl_refiner_1.0",)  # "" = the default model
    assert refiners_for(hello(), "tiny-sdxl") == ("tiny-sdxl-refiner",)
    assert refiners_for(hello(), "dreamshaper-8") == () and refiners_for(None, "juggernaut-xl") == ()


def test_cli_refiner_flags_reach_the_settings(capsys) -> None:
    parser = build_parser()
    for command in ("generate", "img2img", "inpaint"):
        extra = () if command == "generate" else ("in.png",)
        args = parser.parse_args([command, *extra, "--model", "tiny-sdxl", "--refiner", "tiny-sdxl-refiner",
                                  "--refiner-at", "0.75"])
        settings = settings_from(args)
        assert (settings.model, settings.refiner, settings.refiner_at) == ("tiny-sdxl", "tiny-sdxl-refiner", 0.75)
    plain = settings_from(parser.parse_args(["generate"]))
    assert (plain.refiner, plain.refiner_at) == ("", None)
    with pytest.raises(SystemExit):
        parser.parse_args(["generate", "--refiner-at", "1.5"])
    assert "outside 0.0..1.0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["upscale", "in.png", "--refiner", "tiny-sdxl-refiner"])  # an upscale takes none


def latentbrush(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "latentbrush.plugin.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_cli_generate_with_a_refiner_on_a_local_server(tmp_path) -> None:
    common = ("--size", "64x64", "--model", "tiny-sdxl", "-p", "a lighthouse", "--steps", "3", "--seed", "4",
              "--local")
    done = latentbrush("generate", *common, "--refiner", "tiny-sdxl-refiner", "--refiner-at", "0.8",
                       "-o", "refined.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "3/3" in done.stderr  # one progress count over both stages
    plain = latentbrush("generate", *common, "-q", "-o", "plain.png", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    with Image.open(tmp_path / "refined.png") as a, Image.open(tmp_path / "plain.png") as b:
        assert a.size == (64, 64) and not np.array_equal(np.asarray(a), np.asarray(b))
    wrong = latentbrush("generate", "--size", "64x64", "--model", "tiny", "--refiner", "tiny-sdxl-refiner",
                        "--steps", "1", "--local", "-q", cwd=tmp_path)
    assert wrong.returncode != 0 and "SDXL models only" in wrong.stderr
    listed = latentbrush("models", "--local", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    line = next(row for row in listed.stdout.splitlines() if row.strip().startswith("tiny-sdxl-refiner"))
    assert "refiner of tiny-sdxl models" in line
