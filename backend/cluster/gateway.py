"""The gateway: the usual ``LatentbrushServer`` whose engine sends every job to the Ray Serve replicas."""

from __future__ import annotations

from typing import Any

from ..config import ServerConfig
from ..server import LatentbrushServer, Tenants
from ..worker import EngineLike
from .engine import ClusterEngine


def checking_engine(config: ServerConfig, factory: str | None) -> EngineLike:
    """The engine the gateway checks jobs with: on the CPU, it reads the models folder and never loads weights."""
    from dataclasses import replace

    from .replica import build_engine

    return build_engine(replace(config, device="cpu", dtype="float32"), factory)


def gateway(
    config: ServerConfig,
    handle: Any,
    token: str,
    *,
    concurrency: int,
    tenants: Tenants | None = None,
    factory: str | None = None,
) -> LatentbrushServer:
    """``async with gateway(...) as server``: listens like ``latentbrush-server``; ``concurrency`` jobs at once."""

    def engine() -> EngineLike:
        return ClusterEngine(handle, checking_engine(config, factory))

    return LatentbrushServer(config, engine, token, tenants=tenants, concurrency=concurrency)
