"""The ``latentbrush`` command end to end: real subprocesses, a real local server, the tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from latentbrush.plugin.cli.main import build_parser
from PIL import Image, ImageDraw

CLI_TIMEOUT_S = 600  # only stops a hung run


def latentbrush(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "latentbrush.plugin.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def test_arguments_are_checked():
    parser = build_parser()
    args = parser.parse_args(["inpaint", "in.png", "--rect", "1,2,30,40", "-p", "cat", "--steps", "3"])
    assert (args.rect, args.prompt, args.steps, args.strength) == ((1, 2, 30, 40), "cat", 3, 1.0)
    assert parser.parse_args(["img2img", "in.png"]).strength == 0.5
    with pytest.raises(SystemExit):
        parser.parse_args(["inpaint", "in.png", "--rect", "1,2,0,4"])


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["inpaint", "in.png", "--steps", "201"], "--steps"),  # JobRequest.steps: 1..200
        (["inpaint", "in.png", "--steps", "0"], "--steps"),
        (["inpaint", "in.png", "--cfg", "30.5"], "--cfg"),
        (["inpaint", "in.png", "--batch", "17"], "--batch"),
        (["img2img", "in.png", "--strength", "1.2"], "--strength"),
        (["inpaint", "in.png", "--seed", str(2**32)], "--seed"),
        (["upscale", "in.png", "--scale", "8.5"], "--scale"),  # UpscaleParams.scale: 1..8
        (["upscale", "in.png", "--scale", "0.5"], "--scale"),
        (["inpaint", "in.png", "--preview-max-side", "8"], "--preview-max-side"),
        (["generate", "--size", "70000x8"], "--size"),
    ],
)
def test_option_ranges_are_the_protocols_field_limits(argv, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(argv)
    assert exit_info.value.code == 2 and option in capsys.readouterr().err
    edge = build_parser().parse_args(["upscale", "in.png", "--scale", "8", "--steps", "200", "--seed", str(2**32 - 1)])
    assert (edge.scale, edge.steps, edge.seed) == (8.0, 200, 2**32 - 1)


def test_control_arguments_are_checked(capsys):
    parse = build_parser().parse_args
    args = parse(["generate", "--control", "scribble=sketch.png", "--control", "depth=d.png:0.5:0.1:0.8"])
    assert [(c.mode, c.path, c.weight, c.start, c.end) for c in args.control] == [
        ("scribble", "sketch.png", 1.0, 0.0, 1.0), ("depth", "d.png", 0.5, 0.1, 0.8)]
    for bad in ("scribble", "scribble=a.png:3", "canny=a.png:1:0.5", "canny=a.png:1:0.6:0.2"):
        with pytest.raises(SystemExit):
            parse(["img2img", "in.png", "--control", bad])
        assert "--control" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["upscale", "in.png", "--control", "tile=a.png"])  # an upscale takes no controls


def test_reference_arguments_are_checked(capsys):
    parse = build_parser().parse_args
    args = parse(["inpaint", "in.png", "--reference", "style=ref.png", "--reference", "composition=C:/x/l.png:0.4"])
    assert [(r.mode, r.path, r.weight) for r in args.reference] == [
        ("style", "ref.png", 1.0), ("composition", "C:/x/l.png", 0.4)]
    for bad in ("ref.png", "pose=ref.png", "style=ref.png:2.5", "style="):
        with pytest.raises(SystemExit):
            parse(["generate", "--reference", bad])
        assert "--reference" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["upscale", "in.png", "--reference", "style=a.png"])  # an upscale takes no references


def test_region_arguments_are_checked(capsys):
    parse = build_parser().parse_args
    args = parse(["generate", "--region", "sky.png=a stormy sky, rain", "--region", "C:/m/boat.png:0.6=a boat = red"])
    assert [(r.path, r.prompt, r.weight) for r in args.region] == [
        ("sky.png", "a stormy sky, rain", 1.0), ("C:/m/boat.png", "a boat = red", 0.6)]
    assert parse(["generate", "--region", "C:/masks/sky.png=sky"]).region[0].path == "C:/masks/sky.png"
    for bad in ("sky.png", "sky.png=", "=a sky", "sky.png:2.5=a sky"):
        with pytest.raises(SystemExit):
            parse(["generate", "--region", bad])
        assert "--region" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse(["upscale", "in.png", "--region", "a.png=x"])  # an upscale takes no regions


@pytest.mark.slow
def test_generate_with_two_regions_on_the_tiny_model(tmp_path):
    left = Image.new("L", (128, 96), 0)
    left.paste(255, (0, 0, 64, 96))
    left.save(tmp_path / "left.png")
    right = Image.new("RGBA", (128, 96), (0, 0, 0, 0))  # an alpha mask: its opacity is the region
    right.paste((10, 10, 10, 255), (64, 0, 128, 96))
    right.save(tmp_path / "right.png")
    common = ("--size", "128x96", "-p", "a harbour", "--cfg", "5", "--steps", "2", "--seed", "3", "--local", "-q")
    done = latentbrush("generate", *common, "--region", "left.png=a red boat", "--region", "right.png:0.8=a tower",
                       "-o", "regions.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    plain = latentbrush("generate", *common, "-o", "plain.png", cwd=tmp_path)
    assert plain.returncode == 0, plain.stderr
    with Image.open(tmp_path / "regions.png") as a, Image.open(tmp_path / "plain.png") as b:
        assert a.size == (128, 96) and np.abs(np.asarray(a, int) - np.asarray(b, int)).mean() > 0.5
    Image.new("L", (64, 64)).save(tmp_path / "small.png")
    wrong = latentbrush("generate", "--size", "128x96", "--region", "small.png=x", "--url", "ws://127.0.0.1:9",
                        cwd=tmp_path)
    assert wrong.returncode == 2 and "must match" in wrong.stderr  # checked before connecting


@pytest.mark.slow
def test_generate_with_references_of_any_size_on_the_tiny_model(tmp_path):
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (50, 90, 3), np.uint8)).save(tmp_path / "ref.png")
    done = latentbrush("generate", "--size", "128x96", "--reference", "style=ref.png", "--reference",
                       "reference=ref.png:0.5", "-p", "x", "--steps", "2", "--seed", "3", "--local", "-q",
                       "-o", "out.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "out.png").size == (128, 96)
    listed = latentbrush("models", "--local", cwd=tmp_path)
    assert listed.returncode == 0 and "tiny-ip-adapter" in listed.stdout
    assert "reference modes: reference, style, composition" in listed.stdout


@pytest.mark.slow
def test_generate_with_a_scribble_control_on_the_tiny_models(tmp_path):
    sketch = Image.new("RGB", (128, 96), "white")
    ImageDraw.Draw(sketch).ellipse((30, 20, 98, 76), outline="black", width=3)
    sketch.save(tmp_path / "sketch.png")
    Image.new("RGB", (64, 64)).save(tmp_path / "small.png")
    done = latentbrush("generate", "--size", "128x96", "--control", "scribble=sketch.png", "-p", "a ring",
                       "--steps", "2", "--seed", "3", "--local", "-q", "-o", "out.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "out.png").size == (128, 96)
    wrong = latentbrush("generate", "--size", "128x96", "--control", "scribble=small.png", "--url",
                        "ws://127.0.0.1:9", cwd=tmp_path)
    assert wrong.returncode == 2 and "must match" in wrong.stderr  # checked before connecting
    listed = latentbrush("models", "--local", cwd=tmp_path)
    assert listed.returncode == 0 and "tiny-scribble" in listed.stdout and "preprocessors:" in listed.stdout


@pytest.mark.slow
def test_preprocess_makes_the_control_image_a_job_would_use(tmp_path):
    sketch = Image.new("RGB", (128, 96), "white")
    ImageDraw.Draw(sketch).ellipse((30, 20, 98, 76), outline="black", width=2)
    sketch.save(tmp_path / "sketch.png")
    done = latentbrush("preprocess", "sketch.png", "--preprocessor", "scribble", "--rect", "0,0,64,96",
                       "--annotation", "found.json", "--local", "-q", "-o", "control.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    layer = np.asarray(Image.open(tmp_path / "control.layer.png").convert("RGBA"))
    assert layer.shape == (96, 128, 4) and (layer[:, :64, 3] == 255).all() and not layer[:, 64:, 3].any()
    strokes = layer[:, :64, 0] == 255
    assert strokes[48, 30:34].any() and not strokes[48, 40:60].any()  # the ellipse's left edge, white on black
    assert json.loads((tmp_path / "found.json").read_text()) == {}  # scribble finds no keypoints


def test_missing_input_is_a_usage_error(tmp_path):
    done = latentbrush("inpaint", str(tmp_path / "nope.png"), "--rect", "0,0,4,4", "--url", "ws://127.0.0.1:9")
    assert done.returncode == 2 and "does not exist" in done.stderr


def test_unreachable_server_is_a_connection_error(tmp_path):
    Image.new("RGB", (16, 16)).save(tmp_path / "in.png")
    done = latentbrush("img2img", str(tmp_path / "in.png"), "--url", "ws://127.0.0.1:9", "--token", "x")
    assert done.returncode == 3 and "cannot connect" in done.stderr


@pytest.mark.slow
def test_inpaint_local_writes_composite_layer_and_previews(tmp_path):
    rng = np.random.default_rng(5)
    source = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    Image.fromarray(source, "RGB").save(tmp_path / "in.png")
    mask = Image.new("L", (160, 120), 0)
    ImageDraw.Draw(mask).rectangle((60, 40, 99, 79), fill=255)
    mask.save(tmp_path / "mask.png")
    done = latentbrush("inpaint", "in.png", "--mask", "mask.png", "-p", "a red door", "--steps", "3", "--seed", "21",
                       "--local", "-o", "out.png", "--previews", "frames", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "3/3" in done.stderr and "seed 21" in done.stderr  # the progress bar and the summary
    out = np.array(Image.open(tmp_path / "out.png").convert("RGBA"))
    layer = np.array(Image.open(tmp_path / "out.layer.png"))
    before = np.array(Image.open(tmp_path / "in.png").convert("RGBA"))
    assert out.shape == before.shape == layer.shape
    clear = layer[..., 3] == 0
    assert clear.any() and np.array_equal(out[clear], before[clear])  # bit for bit outside the result's alpha
    assert layer[60, 80, 3] == 255 and not np.array_equal(out[60, 80], before[60, 80])
    frames = sorted((tmp_path / "frames").glob("inpaint-*.png"))
    assert len(frames) >= 1 and Image.open(frames[0]).size == (160, 120)
    assert set(done.stdout.split()) >= {"out.png", "out.layer.png"}


@pytest.mark.slow
def test_demo_writes_every_file(tmp_path):
    done = latentbrush("demo", "--out", str(tmp_path / "demo"), "--steps", "2", "-q")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "demo"
    for name in ("input", "mask", "inpaint", "img2img", "generate", "upscale"):
        assert (out / f"{name}.png").is_file(), name
    for name in ("inpaint", "img2img", "generate", "upscale"):
        assert (out / f"{name}.layer.png").is_file(), name
        assert list((out / "previews").glob(f"{name}-*.png")), name
    source = np.array(Image.open(out / "input.png"))
    inpainted = np.array(Image.open(out / "inpaint.png"))
    alpha = np.array(Image.open(out / "inpaint.layer.png"))[..., 3]
    assert np.array_equal(inpainted[alpha == 0], source[alpha == 0])
    assert Image.open(out / "upscale.png").size == (2 * source.shape[1], 2 * source.shape[0])
    assert "latentbrush demo:" in done.stdout and "inpaint" in done.stdout


@pytest.mark.slow
def test_upscale_of_a_side_ending_in_half_rounds_up(tmp_path):
    """7 x 1.5 = 10.5: SPEC rounds half up to 11 (the engine used to round to 10 and fail `internal`)."""
    Image.new("RGB", (7, 7), (90, 140, 200)).save(tmp_path / "in.png")
    done = latentbrush("upscale", "in.png", "--scale", "1.5", "--upscaler", "lanczos", "--local", "-q",
                       "-o", "out.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert Image.open(tmp_path / "out.png").size == (11, 11)
    assert Image.open(tmp_path / "out.layer.png").size == (11, 11)


@pytest.mark.slow
def test_a_servers_lower_step_limit_is_a_usage_error_before_submitting(tmp_path):
    Image.new("RGB", (16, 16)).save(tmp_path / "in.png")
    done = latentbrush("img2img", "in.png", "--steps", "180", "--local", "-q", cwd=tmp_path)  # server default: 150
    assert done.returncode == 2 and "150 steps" in done.stderr and "job.steps" in done.stderr, done.stderr
