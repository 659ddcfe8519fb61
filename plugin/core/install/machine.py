"""Which GPU this computer has, and which torch build fits it.

``detect_machine`` gathers cheap facts (programs on PATH, device files, the Windows display-driver
registry entries); ``classify_gpu`` and ``torch_choice`` are pure functions of them.
"""

from __future__ import annotations

import os
import platform as platform_module
import shlex
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import InstallError

TORCH_ENV = "LATENTBRUSH_TORCH"  # same syntax as installers/bootstrap.sh: "reqs... [--index-url URL]"
GPU_ENV = "LATENTBRUSH_GPU"  # skip detection: nvidia, amd, apple, intel or none
GPUS = ("nvidia", "amd", "apple", "intel", "none")
# pinned like installers/bootstrap.sh: an unpinned requirement pulls a multi-GB build of another version
TORCH_PINS = ("torch==2.14.1", "torchvision==0.29.1")
PYTORCH_INDEX = "https://download.pytorch.org/whl"
WINDOWS_CUDA = "cu128"  # PyPI's Windows torch is CPU-only; the CUDA 12.8 build runs on drivers from 570 on
ROCM = "rocm6.4"


@dataclass(frozen=True)
class Machine:
    platform: str  # sys.platform: linux, win32, darwin
    arch: str  # x86_64, arm64, aarch64, amd64
    gpu: str  # "nvidia" | "amd" | "apple" | "intel" | "none"


@dataclass(frozen=True)
class TorchChoice:
    label: str  # what the user reads: "CUDA (NVIDIA)", "CPU only", ...
    requirements: tuple[str, ...]
    index_url: str | None  # None: the default package index (PyPI)

    def install_args(self) -> tuple[str, ...]:
        """The requirements and index options for ``pip install`` / ``uv pip install``."""
        return (*self.requirements, *(("--index-url", self.index_url) if self.index_url else ()))


def classify_gpu(platform: str, arch: str, *, has_nvidia_smi: bool = False, has_kfd: bool = False,
                 has_intel_tools: bool = False, adapter_names: Iterable[str] = (), pci_vendors: Iterable[str] = ()
                 ) -> str:
    """The GPU family from the facts ``detect_machine`` gathered; NVIDIA wins when there are several."""
    names = [name.lower() for name in adapter_names]
    vendors = {v.lower() for v in pci_vendors}
    if platform == "darwin":
        return "apple" if arch in ("arm64", "aarch64") else "none"
    if has_nvidia_smi or "0x10de" in vendors or any("nvidia" in n for n in names):
        return "nvidia"
    if platform.startswith("linux") and (has_kfd or "0x1002" in vendors):
        return "amd"
    if platform == "win32" and any("radeon" in n or n.startswith("amd ") for n in names):
        return "amd"
    # Arc (discrete and Core Ultra) runs the XPU build; older integrated UHD/Iris graphics do not
    if has_intel_tools or any("intel" in n and "arc" in n for n in names):
        return "intel"
    return "none"


def _windows_adapter_names() -> list[str]:
    """Display adapters from the registry (the display device class), without a subprocess."""
    if sys.platform != "win32":  # also tells mypy that winreg is Windows-only
        return []
    import winreg
    names: list[str] = []
    key_path = r"SYSTEM\CurrentControlSet\Control\Class\{4d36e968-e325-11ce-bfc1-08002be10318}"
    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key_path) as classes:
            for i in range(32):
                try:
                    with winreg.OpenKey(classes, f"{i:04d}") as adapter:
                        names.append(str(winreg.QueryValueEx(adapter, "DriverDesc")[0]))
                except OSError:
                    continue
    except OSError:
        return names
    return names


def _linux_pci_vendors(drm: Path = Path("/sys/class/drm")) -> list[str]:
    """PCI vendor ids of the display devices (0x10de NVIDIA, 0x1002 AMD, 0x8086 Intel)."""
    vendors = []
    for vendor_file in drm.glob("card[0-9]*/device/vendor"):
        try:
            vendors.append(vendor_file.read_text(encoding="ascii").strip())
        except OSError:
            continue
    return vendors


def detect_machine(platform: str = sys.platform, env: Mapping[str, str] = os.environ,
                   which: Callable[..., str | None] = shutil.which) -> Machine:
    """This computer's platform, architecture and GPU family; ``LATENTBRUSH_GPU`` skips the detection."""
    arch = platform_module.machine().lower() or "unknown"
    forced = env.get(GPU_ENV, "").strip().lower()
    if forced:
        if forced not in GPUS:
            raise InstallError(f"{GPU_ENV}={forced!r}: use one of {', '.join(GPUS)}")
        return Machine(platform, arch, forced)
    path = env.get("PATH")
    linux = platform.startswith("linux")
    gpu = classify_gpu(
        platform, arch,
        has_nvidia_smi=which("nvidia-smi", path=path) is not None,
        has_kfd=linux and os.path.exists("/dev/kfd"),
        has_intel_tools=any(which(tool, path=path) for tool in ("xpu-smi", "sycl-ls")),
        adapter_names=_windows_adapter_names() if platform == "win32" else (),
        # Intel's vendor id is left out: nearly every Intel CPU has integrated graphics the XPU build skips
        pci_vendors=[v for v in _linux_pci_vendors() if v != "0x8086"] if linux else (),
    )
    return Machine(platform, arch, gpu)


def parse_torch_spec(text: str) -> TorchChoice:
    """``LATENTBRUSH_TORCH``'s value: requirements, optionally ``--index-url URL`` (or ``--index-url=URL``)."""
    words = shlex.split(text)
    requirements: list[str] = []
    index_url: str | None = None
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--index-url" and i + 1 < len(words):
            index_url, i = words[i + 1], i + 2
            continue
        if word.startswith("--index-url="):
            index_url = word.split("=", 1)[1]
        elif word.startswith("-"):
            raise InstallError(f"{TORCH_ENV}: only requirements and --index-url URL are understood, not {word!r}")
        else:
            requirements.append(word)
        i += 1
    if not requirements:
        raise InstallError(f"{TORCH_ENV}={text!r} names no requirement (e.g. \"torch==2.14.1 torchvision==0.29.1\")")
    return TorchChoice(f"set by {TORCH_ENV}", tuple(requirements), index_url)


def torch_choice(machine: Machine, env: Mapping[str, str] = os.environ) -> TorchChoice:
    """The torch build for ``machine``: CUDA, ROCm, MPS, XPU or CPU, pinned; ``LATENTBRUSH_TORCH`` overrides."""
    override = env.get(TORCH_ENV, "").strip()
    if override:
        return parse_torch_spec(override)
    windows, mac = machine.platform == "win32", machine.platform == "darwin"
    if mac:
        if machine.gpu != "apple":
            raise InstallError("PyTorch 2.14 has no build for Macs with Intel processors; set "
                               f"{TORCH_ENV} to a torch requirement that has one, or use a server on another computer")
        return TorchChoice("Apple GPU (MPS)", TORCH_PINS, None)  # PyPI's macOS arm64 wheel has MPS
    if machine.gpu == "nvidia":
        # PyPI's Linux torch is the CUDA build; on Windows only pytorch.org has CUDA wheels
        return TorchChoice("NVIDIA GPU (CUDA)", TORCH_PINS, f"{PYTORCH_INDEX}/{WINDOWS_CUDA}" if windows else None)
    if machine.gpu == "amd" and not windows:
        return TorchChoice(f"AMD GPU (ROCm {ROCM[4:]})", TORCH_PINS, f"{PYTORCH_INDEX}/{ROCM}")
    if machine.gpu == "intel":
        return TorchChoice("Intel GPU (XPU)", TORCH_PINS, f"{PYTORCH_INDEX}/xpu")
    label = "CPU only (PyTorch has no Windows build for AMD GPUs)" if machine.gpu == "amd" else "CPU only"
    return TorchChoice(label, TORCH_PINS, f"{PYTORCH_INDEX}/cpu")
