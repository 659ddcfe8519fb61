"""From a computer's GPU to the torch build the server gets."""

from __future__ import annotations

import pytest
from latentbrush.plugin.core.install.errors import InstallError
from latentbrush.plugin.core.install.machine import (
    GPUS,
    TORCH_PINS,
    Machine,
    classify_gpu,
    detect_machine,
    parse_torch_spec,
    torch_choice,
)

PINS = ("torch==2.14.1", "torchvision==0.29.1")
NO_ENV: dict[str, str] = {}


def test_pins_are_bootstrap_shs() -> None:
    assert TORCH_PINS == PINS


@pytest.mark.parametrize(("machine", "index", "words"), [
    (Machine("linux", "x86_64", "nvidia"), None, "CUDA"),  # PyPI's Linux torch is the CUDA build
    (Machine("win32", "amd64", "nvidia"), "https://download.pytorch.org/whl/cu128", "CUDA"),
    (Machine("linux", "x86_64", "amd"), "https://download.pytorch.org/whl/rocm6.4", "ROCm"),
    (Machine("darwin", "arm64", "apple"), None, "MPS"),
    (Machine("win32", "amd64", "intel"), "https://download.pytorch.org/whl/xpu", "XPU"),
    (Machine("linux", "x86_64", "intel"), "https://download.pytorch.org/whl/xpu", "XPU"),
    (Machine("linux", "x86_64", "none"), "https://download.pytorch.org/whl/cpu", "CPU"),
    (Machine("win32", "amd64", "none"), "https://download.pytorch.org/whl/cpu", "CPU"),
    (Machine("win32", "amd64", "amd"), "https://download.pytorch.org/whl/cpu", "no Windows build for AMD"),
])
def test_each_machine_gets_its_build_pinned(machine: Machine, index: str | None, words: str) -> None:
    choice = torch_choice(machine, NO_ENV)
    assert choice.requirements == PINS
    assert choice.index_url == index
    assert words in choice.label


def test_intel_macs_have_no_torch_build_unless_overridden() -> None:
    with pytest.raises(InstallError, match="Intel processors"):
        torch_choice(Machine("darwin", "x86_64", "none"), NO_ENV)
    choice = torch_choice(Machine("darwin", "x86_64", "none"), {"LATENTBRUSH_TORCH": "torch==2.2.2"})
    assert choice.requirements == ("torch==2.2.2",)


@pytest.mark.parametrize(("text", "requirements", "index"), [
    ("torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cpu",
     PINS, "https://download.pytorch.org/whl/cpu"),
    ("--index-url=https://example.org/simple torch==2.14.1", ("torch==2.14.1",), "https://example.org/simple"),
    ("  torch==2.14.1   torchvision==0.29.1 ", PINS, None),
])
def test_the_override_is_parsed_like_bootstrap_sh(text: str, requirements: tuple[str, ...], index: str | None) -> None:
    choice = torch_choice(Machine("linux", "x86_64", "nvidia"), {"LATENTBRUSH_TORCH": text})
    assert (choice.requirements, choice.index_url) == (requirements, index)
    assert "LATENTBRUSH_TORCH" in choice.label
    assert choice.install_args() == (*requirements, *(("--index-url", index) if index else ()))


@pytest.mark.parametrize("text", ["--index-url https://x/simple", "torch --pre", "torch --extra-index-url u"])
def test_an_override_it_cannot_honour_is_refused_in_words(text: str) -> None:
    with pytest.raises(InstallError, match="LATENTBRUSH_TORCH"):
        parse_torch_spec(text)


def test_gpu_facts_to_family() -> None:
    assert classify_gpu("linux", "x86_64", has_nvidia_smi=True, has_kfd=True) == "nvidia"
    assert classify_gpu("linux", "x86_64", has_kfd=True) == "amd"
    assert classify_gpu("linux", "x86_64", pci_vendors=["0x1002"]) == "amd"
    assert classify_gpu("linux", "x86_64", pci_vendors=["0x10de"]) == "nvidia"
    assert classify_gpu("linux", "x86_64", has_intel_tools=True) == "intel"
    assert classify_gpu("linux", "x86_64") == "none"
    assert classify_gpu("win32", "amd64", adapter_names=["NVIDIA GeForce RTX 4070"]) == "nvidia"
    assert classify_gpu("win32", "amd64", adapter_names=["Intel(R) Arc(TM) A770 Graphics"]) == "intel"
    assert classify_gpu("win32", "amd64", adapter_names=["Intel(R) UHD Graphics 770"]) == "none"
    assert classify_gpu("win32", "amd64", adapter_names=["AMD Radeon RX 7900 XTX"]) == "amd"
    assert classify_gpu("win32", "amd64", adapter_names=["Intel(R) UHD Graphics", "NVIDIA RTX A2000"]) == "nvidia"
    assert classify_gpu("darwin", "arm64") == "apple"
    assert classify_gpu("darwin", "x86_64", has_nvidia_smi=True) == "none"


def test_detecting_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    machine = detect_machine()
    assert machine.gpu in GPUS and machine.arch and machine.platform
    assert detect_machine(env={"LATENTBRUSH_GPU": "AMD"}).gpu == "amd"
    with pytest.raises(InstallError, match="LATENTBRUSH_GPU"):
        detect_machine(env={"LATENTBRUSH_GPU": "voodoo"})
