"""Server configuration: one frozen value built from the command line (``__main__.py``) or by tests."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from latentbrush.protocol import Limits
from latentbrush.protocol.transport import DEFAULT_PORT

MIB = 1024 * 1024
DEFAULT_MAX_FRAME_MB = 256  # a 4096 x 4096 raw RGBA crop is 64 MiB; leave room for upscale sources
DEFAULT_MAX_PIXELS = 8192 * 8192
DEFAULT_MAX_QUEUE = 64
DEFAULT_MAX_BATCH = 8
DEFAULT_MAX_STEPS = 150
DEFAULT_RETENTION_MB = 512  # finished results kept for clients that reconnect
DEFAULT_BLOB_CACHE_MB = 1024  # decoded uploads kept so unchanged crops are not sent twice
HELLO_TIMEOUT_S = 30.0  # a connection that never says hello is closed after this


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT  # 0 = a free port
    models_dir: Path | None = None
    device: str = "auto"
    dtype: str = "auto"
    token_file: Path | None = None  # None = platformdirs user config dir
    allow_remote: bool = False
    cpu_offload: bool = False
    vae_tiling: bool = False
    t5: bool = True  # False (--no-t5): SD3 models load without their optional T5 text encoder
    hub_models: tuple[str, ...] = ()  # Hugging Face ids offered besides the models folder
    reuse: tuple[Path, ...] = ()  # A1111 / Forge, ComfyUI, InvokeAI folders whose models are used in place
    taesd_dir: Path | None = None  # TAESD weights for sharp previews; None: those in models_dir, if any
    max_frame_bytes: int = DEFAULT_MAX_FRAME_MB * MIB
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_queue: int = DEFAULT_MAX_QUEUE
    max_batch: int = DEFAULT_MAX_BATCH
    max_steps: int = DEFAULT_MAX_STEPS
    retention_bytes: int = DEFAULT_RETENTION_MB * MIB
    blob_cache_bytes: int = DEFAULT_BLOB_CACHE_MB * MIB
    hello_timeout_s: float = HELLO_TIMEOUT_S
    log_file: Path | None = None
    log_level: str = "INFO"
    spool_dir: Path | None = None  # finished, undelivered results kept on disk across restarts (spool.py)

    def limits(self) -> Limits:
        return Limits(
            max_frame_bytes=self.max_frame_bytes,
            max_pixels=self.max_pixels,
            max_queue=self.max_queue,
            max_batch=self.max_batch,
            max_steps=self.max_steps,
        )


def server_version() -> str:
    """The installed distribution's version (for the hello and bug-report logs)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("latentbrush")
    except PackageNotFoundError:
        return "0+unknown"


def is_loopback_host(host: str) -> bool:
    """True for names and addresses that can only be reached from this machine."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(config: ServerConfig, has_token: bool) -> str | None:
    """Why the server must refuse to start with this bind address, or None when it may start."""
    if is_loopback_host(config.host):
        return None
    if not config.allow_remote:
        return f"refusing to listen on {config.host}: a non-loopback address needs --allow-remote"
    if not has_token:
        return "refusing to listen on a non-loopback address without a token"
    return None
