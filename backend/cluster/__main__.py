"""``latentbrush-cluster``: the protocol's server in front of Ray Serve replicas of the engine (docs/STUDIO.md).

It takes every ``latentbrush-server`` option (the replicas get the engine's: ``--models``,
``--device``, ...) plus where Ray is and how many replicas to run. Like the server it prints one
``latentbrush-server listening on ws://HOST:PORT`` line once it listens. Exit codes: 0 after a
clean stop, 1 when Ray cannot be reached or the replicas do not start, 2 for a refused setup.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from latentbrush.protocol.transport import listening_line

from ..__main__ import build_parser as server_parser
from ..__main__ import config_from_args, setup_logging
from ..auth import default_token_path, load_or_create_token
from ..config import ServerConfig, check_bind, server_version
from .artists import DEFAULT_ARTIST_QUEUE, Artists, ArtistsFileError
from .deploy import RayUnavailable, ReplicaPlan, attach, connect, deploy, undeploy

log = logging.getLogger("latentbrush.backend.cluster")


def build_parser() -> argparse.ArgumentParser:
    p = server_parser()
    p.prog = "latentbrush-cluster"
    p.description = "latentbrush gateway: the same protocol, jobs run by Ray Serve replicas on many GPUs"
    g = p.add_argument_group("cluster")
    g.add_argument("--ray", required=True, metavar="ADDRESS",
                   help="Ray cluster address (HOST:6379 from `ray start --head`, ray://HOST:10001, auto), "
                        "or 'local' to start Ray inside this process")
    g.add_argument("--replicas", type=int, default=None, metavar="N",
                   help="engine replicas to run (default: autoscale between --min-replicas and --max-replicas)")
    g.add_argument("--min-replicas", type=int, default=1, metavar="N", help="autoscaling: fewest replicas (default 1)")
    g.add_argument("--max-replicas", type=int, default=2, metavar="N", help="autoscaling: most replicas (default 2)")
    g.add_argument("--gpus-per-replica", type=float, default=None, metavar="F",
                   help="GPUs each replica reserves: 1 (default with --device cuda/auto on a GPU cluster), 0.5 puts "
                        "two small-model replicas on one GPU, 0 for CPU replicas")
    g.add_argument("--cpus-per-replica", type=float, default=1.0, metavar="F", help="CPUs each replica reserves")
    g.add_argument("--ray-cpus", type=int, default=None, metavar="N", help="with --ray local: CPUs Ray may use")
    g.add_argument("--artists", type=Path, default=None, metavar="FILE",
                   help="per-artist tokens (NAME TOKEN lines, or a JSON object); edits apply at the next hello")
    g.add_argument("--artist-queue", type=int, default=DEFAULT_ARTIST_QUEUE, metavar="N",
                   help=f"unfinished jobs per artist at most (default {DEFAULT_ARTIST_QUEUE})")
    g.add_argument("--attach", action="store_true",
                   help="use replicas deployed by a Serve config or a KubeRay RayService (replica:app_builder) "
                        "instead of deploying them (--replicas / --max-replicas: how many jobs run at once)")
    g.add_argument("--keep-replicas", action="store_true",
                   help="leave the replicas running when the gateway stops (a restarted gateway finds them warm)")
    g.add_argument("--spool", type=Path, default=None, metavar="DIR",
                   help="keep finished results that no client has collected yet in DIR, so an artist who "
                        "reconnects after the gateway restarted still gets them (default: in memory only)")
    return p


def plan_from_args(args: argparse.Namespace) -> ReplicaPlan:
    """The replica plan; ``ValueError`` (a usage error) for counts that cannot work."""
    if args.replicas is not None and args.replicas < 1:
        raise ValueError("--replicas must be at least 1")
    if not 0 <= args.min_replicas <= args.max_replicas or args.max_replicas < 1:
        raise ValueError("--min-replicas must be at most --max-replicas, and --max-replicas at least 1")
    gpus = args.gpus_per_replica
    if gpus is None:
        gpus = 0.0 if args.device in ("cpu", "mps") or args.ray == "local" else 1.0
    if gpus < 0 or args.cpus_per_replica < 0:
        raise ValueError("--gpus-per-replica and --cpus-per-replica cannot be negative")
    return ReplicaPlan(args.replicas, args.min_replicas, args.max_replicas, gpus, args.cpus_per_replica)


async def serve(config: ServerConfig, handle: object, token: str, artists: Artists | None, plan: ReplicaPlan,
                factory: str | None) -> None:
    from .gateway import gateway

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    async with gateway(config, handle, token, concurrency=plan.most, tenants=artists, factory=factory) as server:
        print(listening_line(server.url), flush=True)
        await stop.wait()
        log.info("shutting down")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    config = replace(config_from_args(args), spool_dir=args.spool)
    try:
        plan = plan_from_args(args)
    except ValueError as exc:
        parser.error(str(exc))
    secrets = setup_logging(config)
    token_path = config.token_file or default_token_path()
    token = load_or_create_token(token_path)
    secrets.add_secret(token)
    artists = None
    if args.artists is not None:
        try:
            def hide(tokens: Iterable[str]) -> None:  # no artist's token ever reaches the log
                for token in tokens:
                    secrets.add_secret(token)

            artists = Artists(args.artists, args.artist_queue, on_load=hide)
        except (OSError, ArtistsFileError) as exc:
            log.error("cannot use the artists file %s: %s", args.artists, exc)
            return 2
    if config.spool_dir is not None:
        try:
            config.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            log.error("cannot use the spool folder %s: %s", config.spool_dir, exc)
            return 2
    refusal = check_bind(config, True)
    if refusal is not None:
        log.error("%s", refusal)
        return 2
    log.info("latentbrush-cluster %s: Ray at %s, %s", server_version(), args.ray, plan)
    try:
        connect(args.ray, num_cpus=args.ray_cpus)
        handle = attach() if args.attach else deploy(config, plan, args.engine_factory)
    except RayUnavailable as exc:
        log.error("%s", exc)
        return 1
    try:
        asyncio.run(serve(config, handle, token, artists, plan, args.engine_factory))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        log.error("latentbrush-cluster failed on %s:%s: %s", config.host, config.port, exc)
        return 1
    except Exception:
        log.exception("latentbrush-cluster failed")
        return 1
    finally:
        if not (args.keep_replicas or args.attach) or args.ray == "local":
            try:
                undeploy()
            except Exception as exc:  # Ray already gone (the head stopped): nothing left to remove
                log.warning("removing the replicas failed: %s", exc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
