"""``latentbrush-server doctor``: what this machine and models folder give the backend, for bug reports.

It runs without a GPU and without the Hub: torch is imported here (not at start-up of the command line), the
device is the one the engine's own ``choose_device("auto")`` picks, and the models are what the backend's own
registries find. Problems are listed in plain words; the command always exits 0.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = ("diffusers", "transformers", "huggingface_hub", "hf_xet", "accelerate", "safetensors", "spandrel",
             "peft", "compel", "controlnet_aux", "opencv-python-headless")
FAMILIES = ("sd15", "sdxl", "sd3", "flux")


def version_of(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def torch_report() -> dict[str, Any]:
    try:
        import torch
    except Exception as exc:  # not installed, or a broken build (missing CUDA libraries)
        return {"installed": False, "error": f"{type(exc).__name__}: {exc}"}
    hip = getattr(torch.version, "hip", None)
    cuda = torch.version.cuda
    mps_backend = getattr(torch.backends, "mps", None)
    xpu = getattr(torch, "xpu", None)
    info: dict[str, Any] = {
        "installed": True, "version": torch.__version__, "cuda": cuda, "hip": hip,
        "cuda_available": bool(torch.cuda.is_available()),
        "mps_available": bool(mps_backend is not None and mps_backend.is_available()),
        "xpu_available": bool(xpu is not None and xpu.is_available()),
    }
    if hip:
        info["build"] = f"ROCm {hip}"
    elif cuda:
        info["build"] = f"CUDA {cuda}"
    elif mps_backend is not None and mps_backend.is_built():
        info["build"] = "MPS (Apple)"
    elif xpu is not None and xpu.is_available():
        info["build"] = "XPU (Intel)"
    else:
        info["build"] = "CPU only"
    return info


def device_report() -> dict[str, Any]:
    """The device the engine would use, and its memory when it is a CUDA (or ROCm) GPU."""
    try:
        import torch

        from ..models.placement import choose_device

        device = choose_device("auto")
    except Exception as exc:
        return {"chosen": None, "error": f"{type(exc).__name__}: {exc}"}
    found: dict[str, Any] = {"chosen": device.type}
    if device.type == "cuda":
        found["name"] = torch.cuda.get_device_name(device)
        try:
            free, total = torch.cuda.mem_get_info(device)
            found.update(vram_total_bytes=int(total), vram_free_bytes=int(free))
        except RuntimeError as exc:  # a busy or failing GPU: report, do not fail
            found["error"] = str(exc)
    return found


@contextmanager
def quiet_registries() -> Iterator[None]:
    """The registries log every refused file; the report lists them instead."""
    logger = logging.getLogger("latentbrush")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def models_report(models_dir: Path) -> dict[str, Any]:
    """What the backend's registries find in ``models_dir``, by kind (names), and what they refuse (reasons)."""
    found: dict[str, Any] = {}
    refused: dict[str, str] = {}

    def kind(name: str, scan: Any) -> None:
        try:
            found[name] = scan()
        except Exception as exc:  # one kind failing (a missing optional library) must not hide the others
            found[name] = []
            refused[f"({name})"] = f"cannot scan: {type(exc).__name__}: {exc}"

    with quiet_registries():
        from ..models.reuse import gather

        folders = gather(models_dir)

        def checkpoints() -> list[str]:
            from ..models.registry import ModelRegistry

            registry = ModelRegistry(folders)
            refused.update(getattr(registry, "_refused", {}))
            return [i.name for i in registry.infos() if i.source != "builtin"]

        def loras() -> list[str]:
            from ..lora.registry import LoraRegistry

            registry = LoraRegistry(folders.loras)
            refused.update(registry.refused)
            return [e.name for e in registry.entries()]

        def embeddings() -> list[str]:
            from ..prompts.embeddings import EmbeddingRegistry

            return list(EmbeddingRegistry(folders.embeddings).names())

        def controlnets() -> list[str]:
            from ..control.registry import ControlRegistry

            registry = ControlRegistry(folders.controlnet)
            refused.update(registry.refused)
            return [e.name for e in registry.entries() if e.source != "builtin"]

        def ip_adapters() -> list[str]:
            from ..reference.registry import ReferenceRegistry

            registry = ReferenceRegistry(folders.ipadapter, folders.clip_vision)
            refused.update(registry.refused)
            return [e.name for e in registry.adapters() if e.source != "builtin"]

        def image_encoders() -> list[str]:
            from ..reference.registry import ReferenceRegistry

            return [e.name for e in ReferenceRegistry(folders.ipadapter, folders.clip_vision).encoders()
                    if e.location]

        def upscalers() -> list[str]:
            from ..upscale.registry import UpscalerRegistry

            return [f.name for f in UpscalerRegistry(folders.upscale).files()]

        def depth() -> list[str]:
            from ..control.depth import depth_models

            return [p.name for p in depth_models(folders.annotators)]

        for name, scan in (("checkpoints", checkpoints), ("loras", loras), ("embeddings", embeddings),
                           ("controlnets", controlnets), ("ip_adapters", ip_adapters),
                           ("image_encoders", image_encoders), ("upscalers", upscalers), ("depth_models", depth)):
            kind(name, scan)
        try:
            from ..models.taesd import find_taesd

            taesd = {family: (str(s.path) if (s := find_taesd(family, folders.taesd)) else None) for family in FAMILIES}
        except Exception as exc:
            taesd = {}
            refused["(taesd)"] = f"cannot scan: {type(exc).__name__}: {exc}"
    return {"kinds": found, "refused": refused, "taesd": taesd}


def collect(models_dir: Path | None, sets_file: Path | None = None) -> dict[str, Any]:
    from ..config import server_version
    from .plan import set_state
    from .sets import SetsError, load_sets

    report: dict[str, Any] = {
        "latentbrush": server_version(),
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "platform": platform.platform(),
        "torch": torch_report(),
        "libraries": {name: version_of(name) for name in LIBRARIES},
        "models_dir": str(models_dir) if models_dir is not None else None,
    }
    problems: list[str] = []
    report["device"] = device_report() if report["torch"]["installed"] else {"chosen": None}
    if not report["torch"]["installed"]:
        problems.append(f"torch cannot be imported ({report['torch']['error']}): the server cannot run")
    elif report["device"].get("chosen") == "cpu":
        problems.append(cpu_problem(report["torch"]))
    if models_dir is None:
        problems.append("no models folder configured: start the server with --models DIR, and pass the same "
                        "--models DIR here")
    elif not models_dir.is_dir():
        problems.append(f"the models folder {models_dir} does not exist")
    else:
        report["models"] = models_report(models_dir)
        try:
            report["sets"] = {s.name: set_state(s, models_dir) for s in load_sets(sets_file)}
        except SetsError as exc:
            problems.append(str(exc))
        if not report["models"]["kinds"].get("checkpoints"):
            problems.append("no checkpoints in the models folder: the server offers only the built-in 'tiny' model, "
                            "which paints noise (get one with `latentbrush-server models download sd15 --models "
                            f"{models_dir}`)")
        missing = [f for f, path in report["models"]["taesd"].items() if path is None]
        if missing:
            problems.append(f"no TAESD for {', '.join(missing)}: step previews are blurry (get them with "
                            f"`latentbrush-server models download taesd --models {models_dir}`)")
    report["problems"] = problems
    return report


def cpu_problem(torch_info: dict[str, Any]) -> str:
    """Why the engine runs on the CPU, in words that say what to check."""
    slow = "pictures take minutes on the CPU instead of seconds"
    if torch_info.get("hip"):
        return f"torch is built for ROCm {torch_info['hip']} but sees no AMD GPU ({slow}): check the ROCm driver"
    if torch_info.get("cuda"):
        return (f"torch is built for CUDA {torch_info['cuda']} but sees no NVIDIA GPU ({slow}): check the driver "
                "with nvidia-smi")
    if torch_info.get("xpu_available"):
        return f"an Intel XPU is there but the engine does not use XPUs yet ({slow})"
    return f"torch is a CPU-only build ({slow}): install a CUDA, ROCm or Apple MPS build of torch for your GPU"


def render(report: dict[str, Any]) -> str:
    torch_info, device = report["torch"], report["device"]
    python = report["python"]
    lines = [f"latentbrush {report['latentbrush']}, Python {python['version']} ({python['executable']})",
             f"platform: {report['platform']}"]
    if torch_info["installed"]:
        lines.append(f"torch {torch_info['version']} ({torch_info['build']}); CUDA available: "
                     f"{torch_info['cuda_available']}, MPS: {torch_info['mps_available']}, "
                     f"XPU: {torch_info['xpu_available']}")
    else:
        lines.append(f"torch: not usable ({torch_info['error']})")
    if device.get("chosen"):
        memory = ""
        if "vram_total_bytes" in device:
            gib = 1024 ** 3
            memory = f", {device['vram_free_bytes'] / gib:.1f} of {device['vram_total_bytes'] / gib:.1f} GiB free"
        lines.append(f"device: {device['chosen']}{' (' + device['name'] + ')' if device.get('name') else ''}{memory}")
    libraries = ", ".join(f"{n} {v}" for n, v in report["libraries"].items() if v)
    lines.append(f"libraries: {libraries}")
    lines.append(f"models folder: {report['models_dir'] or 'none configured'}")
    models = report.get("models")
    if models:
        for kind, names in models["kinds"].items():
            shown = ", ".join(names[:8]) + (f", ... ({len(names) - 8} more)" if len(names) > 8 else "")
            lines.append(f"  {kind.replace('_', ' ')}: {len(names)}{': ' + shown if names else ''}")
        taesd = ", ".join(f"{f} {'yes' if p else 'no'}" for f, p in models["taesd"].items())
        lines.append(f"  taesd previews: {taesd}")
        for name, reason in models["refused"].items():
            lines.append(f"  not used: {name}: {reason}")
    if report.get("sets"):
        lines.append("recommended sets: " + ", ".join(f"{n} {s}" for n, s in report["sets"].items()))
    if report["problems"]:
        lines.append("problems:")
        lines.extend(f"  - {p}" for p in report["problems"])
    else:
        lines.append("no problems found")
    return "\n".join(lines)


def run_doctor(models_dir: Path | None, as_json: bool, sets_file: Path | None = None) -> int:
    report = collect(models_dir.expanduser() if models_dir is not None else None, sets_file)
    print(json.dumps(report, indent=2) if as_json else render(report))
    return 0
