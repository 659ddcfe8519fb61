"""``latentbrush generate --lora`` and prompt tags, the job info it prints, and ``latentbrush models``' LoRAs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.lora_files import a1111_embedding, kohya_lora, write_lora
from latentbrush.plugin.cli.main import build_parser
from latentbrush.protocol import LoraRef

CLI_TIMEOUT_S = 600  # only stops a hung run


def latentbrush(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-m", "latentbrush.plugin.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S)


def test_lora_arguments_are_checked(capsys) -> None:
    args = build_parser().parse_args(["generate", "--lora", "detail:0.8", "--lora", "styles/ink", "--lora", "a:b"])
    assert args.lora == [LoraRef("detail", 0.8), LoraRef("styles/ink", 1.0), LoraRef("a:b", 1.0)]
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["generate", "--lora", "detail:5"])
    assert exit_info.value.code == 2 and "--lora" in capsys.readouterr().err


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from latentbrush.backend.models.tiny import build_tiny_sd15

    root = tmp_path_factory.mktemp("cli-lora-models")
    pipe = build_tiny_sd15(inpaint=False)
    write_lora(root / "loras", "detail", kohya_lora(pipe, seed=1))
    write_lora(root / "embeddings", "mystyle", a1111_embedding(pipe))
    return root


def test_generate_reports_the_chunks_of_a_long_prompt_and_its_lora(models: Path, tmp_path: Path) -> None:
    prompt = "a cat " * 60 + "<lora:detail:0.8>"  # 120 tokens with the tiny vocabulary
    done = latentbrush("generate", "--size", "64x64", "-p", prompt, "--steps", "2", "--seed", "3", "--model", "tiny",
                       "--local", "--models", str(models), "--device", "cpu", "-o", "out.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "prompt: 2 chunk(s) of 75 tokens" in done.stderr and "loras: detail 0.8" in done.stderr
    listed = latentbrush("models", "--local", "--models", str(models), "--device", "cpu", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "loras:" in listed.stdout and "detail" in listed.stdout and "embeddings: mystyle" in listed.stdout
