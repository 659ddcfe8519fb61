"""Upscaler discovery and safe loading: names, best choice, cache, and clear errors for bad files."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from latentbrush.backend.events import EngineError
from latentbrush.backend.upscale.registry import LANCZOS, UpscalerRegistry
from latentbrush.protocol import ErrorCode
from safetensors.torch import save_file
from upscale_fakes import compact, registry_at, save_model


def test_names_list_models_in_both_folders_best_first_and_lanczos_last(models_dir: Path) -> None:
    names = registry_at(models_dir).names()
    assert names[-1] == LANCZOS
    assert set(names) == {
        "4x-tiny-compact.safetensors",
        "2x-tiny-compact.pth",
        "x3-tiny.safetensors",
        "esrgan/2x-tiny-esrgan.pth",
        LANCZOS,
    }
    sizes = [
        (models_dir / "upscale" / n).stat().st_size
        if (models_dir / "upscale" / n).exists()
        else (models_dir / "upscale_models" / n).stat().st_size
        for n in names[:-1]
    ]
    assert sizes == sorted(sizes, reverse=True), "all names say a scale, so the largest file comes first"


def test_without_a_models_dir_or_folder_only_lanczos(tmp_path: Path) -> None:
    assert registry_at(None).names() == (LANCZOS,)
    assert registry_at(tmp_path).names() == (LANCZOS,)
    assert registry_at(tmp_path).resolve("") == LANCZOS


def test_best_prefers_a_scale_in_the_name_then_size(tmp_path: Path) -> None:
    save_model(compact(4, num_feat=16), tmp_path / "upscale" / "bigger-denoiser.safetensors")
    save_model(compact(4), tmp_path / "upscale" / "RealESRGAN_x4plus.safetensors")
    save_model(compact(2, num_feat=4), tmp_path / "upscale" / "2x-small.safetensors")
    registry = registry_at(tmp_path)
    assert registry.names() == (
        "RealESRGAN_x4plus.safetensors",
        "2x-small.safetensors",
        "bigger-denoiser.safetensors",
        LANCZOS,
    )
    assert registry.resolve("") == "RealESRGAN_x4plus.safetensors"


def test_resolve_accepts_the_stem_and_names_ambiguity(tmp_path: Path) -> None:
    save_model(compact(4), tmp_path / "upscale" / "4x-a.safetensors")
    save_model(compact(2), tmp_path / "upscale" / "4x-b.safetensors")
    save_model(compact(2), tmp_path / "upscale" / "4x-b.pth")
    registry = registry_at(tmp_path)
    assert registry.resolve("4x-a") == "4x-a.safetensors"
    assert registry.resolve(LANCZOS) == LANCZOS
    with pytest.raises(EngineError) as err:
        registry.resolve("4x-b")
    assert err.value.code == ErrorCode.UNKNOWN_UPSCALER and "4x-b.pth" in err.value.message
    with pytest.raises(EngineError) as err:
        registry.resolve("nope")
    assert err.value.code == ErrorCode.UNKNOWN_UPSCALER and err.value.field == "job.upscale.upscaler"
    assert "4x-a.safetensors" in err.value.message


@pytest.mark.parametrize("name", ["4x-tiny-compact.safetensors", "2x-tiny-compact.pth", "esrgan/2x-tiny-esrgan.pth"])
def test_load_gives_a_spandrel_descriptor_that_upscales(models_dir: Path, name: str) -> None:
    import spandrel

    model = registry_at(models_dir).load(name)
    assert isinstance(model, spandrel.ImageModelDescriptor)
    out = model(torch.rand(1, 3, 8, 8))
    assert out.shape == (1, 3, 8 * model.scale, 8 * model.scale)


def test_load_is_cached_and_reloads_a_changed_file(tmp_path: Path) -> None:
    path = save_model(compact(4), tmp_path / "upscale" / "4x.safetensors")
    registry = registry_at(tmp_path)
    first = registry.load("4x.safetensors")
    assert registry.load("4x") is first
    save_model(compact(2), path)
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse file systems
    second = registry.load("4x.safetensors")
    assert second is not first and second.scale == 2


def test_cache_keeps_only_cache_size_models(models_dir: Path) -> None:
    registry = registry_at(models_dir, cache_size=1)
    a = registry.load("4x-tiny-compact.safetensors")
    registry.load("x3-tiny.safetensors")
    assert registry.load("4x-tiny-compact.safetensors") is not a


def expect_refusal(registry: UpscalerRegistry, name: str, code: ErrorCode, *words: str) -> EngineError:
    with pytest.raises(EngineError) as err:
        registry.load(name)
    assert err.value.code == code
    assert err.value.field == "job.upscale.upscaler"
    for word in words:
        assert word in err.value.message
    return err.value


def test_random_bytes_safetensors_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "upscale").mkdir()
    (tmp_path / "upscale" / "4x-broken.safetensors").write_bytes(os.urandom(300))
    expect_refusal(
        registry_at(tmp_path), "4x-broken.safetensors", ErrorCode.NOT_SUPPORTED, "4x-broken.safetensors"
    )


def test_truncated_and_garbage_pth_are_clear_errors(tmp_path: Path, models_dir: Path) -> None:
    folder = tmp_path / "upscale"
    folder.mkdir()
    (folder / "garbage.pth").write_bytes(b"not a zip file at all" * 20)
    good = (models_dir / "upscale" / "2x-tiny-compact.pth").read_bytes()
    (folder / "truncated.pth").write_bytes(good[: len(good) // 2])
    registry = registry_at(tmp_path)
    expect_refusal(registry, "garbage.pth", ErrorCode.NOT_SUPPORTED, "garbage.pth")
    expect_refusal(registry, "truncated.pth", ErrorCode.NOT_SUPPORTED, "truncated.pth")


class _Payload:
    """Unpickling this would call ``touch`` on a file: proof that code ran."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_a_pickle_that_runs_code_is_refused_without_running_it(tmp_path: Path) -> None:
    folder = tmp_path / "upscale"
    folder.mkdir()
    proof = tmp_path / "code-ran"
    with open(folder / "4x-evil.pth", "wb") as f:
        torch.save({"params": {"conv.weight": torch.zeros(1)}, "x": _Payload(str(proof))}, f)
    # the payload really does run under a plain unpickler (so the test would notice a leak)
    pickle.loads(pickle.dumps(_Payload(str(proof))))
    assert proof.exists()
    proof.unlink()
    expect_refusal(registry_at(tmp_path), "4x-evil.pth", ErrorCode.NOT_SUPPORTED, "4x-evil.pth", "weights-only")
    assert not proof.exists()


def test_unknown_architecture_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "upscale").mkdir()
    save_file({"foo.weight": torch.zeros(3, 3)}, str(tmp_path / "upscale" / "mystery.safetensors"))
    expect_refusal(
        registry_at(tmp_path), "mystery", ErrorCode.NOT_SUPPORTED, "mystery.safetensors", "architecture"
    )


def test_ckpt_and_pt_files_are_not_listed_and_refused_by_name(tmp_path: Path, models_dir: Path) -> None:
    folder = tmp_path / "upscale"
    folder.mkdir()
    shutil.copy(models_dir / "upscale" / "2x-tiny-compact.pth", folder / "4x-old.ckpt")
    shutil.copy(models_dir / "upscale" / "2x-tiny-compact.pth", folder / "4x-script.pt")
    registry = registry_at(tmp_path)
    assert registry.names() == (LANCZOS,)
    expect_refusal(registry, "4x-old.ckpt", ErrorCode.NOT_SUPPORTED, "4x-old.ckpt", ".safetensors")
    expect_refusal(registry, "4x-script", ErrorCode.NOT_SUPPORTED, "4x-script.pt")
    expect_refusal(registry, "missing.ckpt", ErrorCode.UNKNOWN_UPSCALER, "missing.ckpt")


def test_lanczos_is_not_a_loadable_model(models_dir: Path) -> None:
    expect_refusal(registry_at(models_dir), LANCZOS, ErrorCode.NOT_SUPPORTED)


def test_cpu_models_stay_float32_even_if_half_is_preferred(models_dir: Path) -> None:
    model = registry_at(models_dir, device="cpu", dtype=torch.float16).load("4x-tiny-compact.safetensors")
    assert model.dtype == torch.float32 and model.device.type == "cpu"
