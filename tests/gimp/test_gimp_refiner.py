"""The GIMP procedures' SDXL refiner fields (SPEC.md 9.13): on Generate, Inpaint and Refine, and into the job."""

from __future__ import annotations

import pytest
from latentbrush.plugin.core.planning import plan_generate, plan_region
from latentbrush.plugin.core.requests import build_request, new_job_id
from latentbrush.plugin.hosts.gimp.procedures import PROCEDURES, settings_from_values
from latentbrush.protocol import REFINER_AT, JobRequest, blob_hash, field_range
from latentbrush.protocol.geometry import Rect, Size


@pytest.mark.parametrize("proc", [p for p in PROCEDURES if p.operation], ids=lambda p: p.name)
def test_diffusion_procedures_take_a_refiner_and_an_upscale_none(proc) -> None:
    args = {arg.name: arg for arg in proc.args}
    if proc.operation == "upscale":
        assert "refiner" not in args and "refiner-at" not in args
        return
    assert (args["refiner"].kind, args["refiner"].default) == ("string", "")
    spec = args["refiner-at"]
    assert (spec.kind, spec.default, (spec.minimum, spec.maximum)) == (
        "double", REFINER_AT, field_range(JobRequest, "refiner_at"))


@pytest.mark.parametrize("op", ["txt2img", "img2img", "inpaint"])
def test_the_refiner_field_reaches_the_job(op: str) -> None:
    values = {"model": "juggernaut-xl", "refiner": " sd_xl_refiner_1.0 ", "refiner-at": 0.75, "strength": 0.6}
    settings = settings_from_values(values, op)
    assert (settings.refiner, settings.refiner_at) == ("sd_xl_refiner_1.0", 0.75)
    plan = plan_region(Size(320, 240), Rect(40, 40, 120, 100))
    job = build_request(op, plan_generate(plan) if op == "txt2img" else plan, settings, job_id=new_job_id(),
                        image=blob_hash(b"i"), mask=blob_hash(b"m"))
    assert (job.refiner, job.refiner_at) == ("sd_xl_refiner_1.0", 0.75)
    plain = build_request(op, plan_generate(plan) if op == "txt2img" else plan,
                          settings_from_values({"model": "x", "strength": 0.6}, op), job_id=new_job_id(),
                          image=blob_hash(b"i"), mask=blob_hash(b"m"))
    assert plain.refiner is None and plain.refiner_at is None  # an empty field sends nothing
