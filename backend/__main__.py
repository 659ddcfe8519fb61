"""``latentbrush-server`` / ``python -m latentbrush.backend``: run the WebSocket backend.

When it listens it prints exactly one line to stdout, ``latentbrush-server listening on
ws://HOST:PORT``, and flushes; clients and tests parse it. Logs go to stderr (and --log-file).
SIGINT / SIGTERM stop it cleanly: the running job is cancelled, connections are closed.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import logging
import platform
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from latentbrush.protocol.transport import listening_line

from . import redact
from .auth import default_token_path, load_or_create_token
from .config import (
    DEFAULT_MAX_FRAME_MB,
    DEFAULT_MAX_QUEUE,
    DEFAULT_PORT,
    DEFAULT_RETENTION_MB,
    MIB,
    ServerConfig,
    check_bind,
    server_version,
)
from .worker import EngineLike

log = logging.getLogger("latentbrush.backend")

EngineFactory = Callable[[ServerConfig], EngineLike]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="latentbrush-server", description="latentbrush diffusion backend (protocol v1)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port, 0 = a free port (default {DEFAULT_PORT})")
    p.add_argument("--models", type=Path, default=None, metavar="DIR", help="folder of models (checkpoints, upscalers)")
    p.add_argument(
        "--hub-model", action="append", default=[], metavar="ID",
        help="a Hugging Face model id to offer (repeatable; downloaded on first use when online)",
    )

    def reused(text: str) -> Path:  # recognised now, so a wrong path is a usage error before anything starts
        from .models.reuse import recognise

        try:
            return recognise(Path(text)).root
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    p.add_argument(
        "--reuse", action="append", default=[], type=reused, metavar="PATH",
        help="an A1111/Forge or ComfyUI folder, a ComfyUI extra_model_paths.yaml, or an InvokeAI folder whose "
             "models are used in place (repeatable; nothing is copied)",
    )
    p.add_argument("--taesd", type=Path, default=None, metavar="DIR",
                   help="TAESD weights folder (default: taesd/, taesdxl/ or vae_approx/ in --models)")
    p.add_argument("--device", default="auto", help="auto, cuda, cuda:1, mps, cpu")
    p.add_argument("--dtype", default="auto", help="auto, float16, bfloat16, float32")
    p.add_argument(
        "--token-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="token file (default: the user config folder); created 0600 when missing",
    )
    p.add_argument("--allow-remote", action="store_true", help="allow binding a non-loopback address (token required)")
    p.add_argument("--cpu-offload", action="store_true", help="keep weights in RAM and move them to the GPU per use")
    p.add_argument("--vae-tiling", action="store_true", help="decode large images in VAE tiles (less memory)")
    p.add_argument("--no-t5", dest="t5", action="store_false",
                   help="load SD3 models without their T5 text encoder (~9 GB less; prompts are followed less closely)")
    p.add_argument("--max-frame-mb", type=int, default=DEFAULT_MAX_FRAME_MB, help="largest binary frame accepted")
    p.add_argument("--max-queue", type=int, default=DEFAULT_MAX_QUEUE, help="jobs waiting at most, all clients")
    p.add_argument(
        "--retention-mb",
        type=int,
        default=DEFAULT_RETENTION_MB,
        help="memory for finished results that wait for a client to reconnect",
    )
    p.add_argument("--log-file", type=Path, default=None, help="also write the log to this file")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument("--engine-factory", default=None, help=argparse.SUPPRESS)  # tests: "module:fn" or "file.py:fn"
    return p


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    return ServerConfig(
        host=args.host,
        port=args.port,
        models_dir=args.models,
        device=args.device,
        dtype=args.dtype,
        token_file=args.token_file,
        allow_remote=args.allow_remote,
        cpu_offload=args.cpu_offload,
        vae_tiling=args.vae_tiling,
        t5=args.t5,
        hub_models=tuple(args.hub_model),
        reuse=tuple(args.reuse),
        taesd_dir=args.taesd,
        max_frame_bytes=args.max_frame_mb * MIB,
        max_queue=args.max_queue,
        retention_bytes=args.retention_mb * MIB,
        log_file=args.log_file,
        log_level=args.log_level,
    )


def setup_logging(config: ServerConfig) -> redact.SecretFilter:
    """Log handlers for the process, each behind the returned filter (add the token to it once loaded)."""
    secrets = redact.SecretFilter()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if config.log_file is not None:
        config.log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(config.log_file, encoding="utf-8"))
    redact.install(secrets, handlers)  # before any record: no secret is logged at any level, websockets' included
    logging.basicConfig(
        level=config.log_level, handlers=handlers, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if config.log_level != "DEBUG":
        logging.getLogger("websockets").setLevel(logging.WARNING)  # one line per handshake is noise
    return secrets


def real_engine_factory(config: ServerConfig) -> EngineLike:
    from .engine import Engine, EngineSettings  # torch and diffusers load here, on the worker thread

    return Engine(
        EngineSettings(
            models_dir=config.models_dir,
            device=config.device,
            dtype=config.dtype,
            cpu_offload=config.cpu_offload,
            vae_tiling=config.vae_tiling,
            t5=config.t5,
            hub_models=config.hub_models,
            reuse=config.reuse,
            taesd_dir=config.taesd_dir,
        )
    )


def load_engine_factory(spec: str) -> EngineFactory:
    """``package.module:function`` or ``path/to/file.py:function`` -> the function."""
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name:
        raise SystemExit(f"--engine-factory must look like module:function, got {spec!r}")
    if target.endswith(".py"):
        module_spec = importlib.util.spec_from_file_location(Path(target).stem, target)
        if module_spec is None or module_spec.loader is None:
            raise SystemExit(f"cannot load {target}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module
        module_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    return getattr(module, name)


async def serve(config: ServerConfig, factory: EngineFactory, token: str, token_path: Path) -> None:
    from .server import LatentbrushServer  # websockets is only needed once we serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows: Ctrl+C arrives as KeyboardInterrupt
            pass
    log.info(
        "latentbrush-server %s starting (python %s, %s)", server_version(), sys.version.split()[0], platform.platform()
    )
    async with LatentbrushServer(config, lambda: factory(config), token) as server:
        log.info("token file %s", token_path)
        print(listening_line(server.url), flush=True)
        await stop.wait()
        log.info("shutting down")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("models", "doctor"):  # `models list|download`, `doctor`: before the server's flags
        from .downloads.cli import run_subcommand

        return run_subcommand(argv)
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    secrets = setup_logging(config)
    token_path = config.token_file or default_token_path()
    token = load_or_create_token(token_path)
    secrets.add_secret(token)
    refusal = check_bind(config, bool(token))
    if refusal is not None:
        log.error("%s", refusal)
        return 2
    factory = load_engine_factory(args.engine_factory) if args.engine_factory else real_engine_factory
    try:
        asyncio.run(serve(config, factory, token, token_path))
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # address in use, permission denied, models folder unreadable
        log.error("latentbrush-server failed on %s:%s: %s", config.host, config.port, exc)
        return 1
    except Exception:  # the engine could not be built (missing torch, broken model): say so, exit non-zero
        log.exception("latentbrush-server failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
