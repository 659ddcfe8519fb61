"""Connect to Ray, deploy the engine replicas with Ray Serve, hand back the deployment handle.

``--ray local`` starts a Ray instance inside the gateway (one machine, tests); any other
address joins a running cluster (``ray start --head`` on the head node, docs/STUDIO.md). An
address nobody answers on is found out with a plain TCP connect before Ray is asked: Ray
itself would keep retrying for a long time before it says so.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from typing import Any

from ..config import ServerConfig

log = logging.getLogger(__name__)

APP_NAME = "latentbrush"
DEPLOYMENT = "engine"  # replica.engine_deployment's name
GCS_PORT = 6379  # `ray start --head`'s default
CLIENT_PORT = 10001  # Ray Client's default (ray://HOST)
CONNECT_TIMEOUT_S = 5.0


class RayUnavailable(Exception):
    """Ray could not be reached or could not run the replicas (the message says what to do)."""


@dataclass(frozen=True)
class ReplicaPlan:
    """How many replicas, and what each one gets from Ray's scheduler."""

    replicas: int | None = 1  # fixed count; None: autoscale between min and max
    min_replicas: int = 1
    max_replicas: int = 1
    gpus: float = 0.0  # per replica: 1 = a whole GPU, 0.5 = two small-model replicas per GPU
    cpus: float = 1.0

    @property
    def most(self) -> int:
        """Replicas there can be at once: how many jobs the gateway runs in parallel."""
        return self.replicas if self.replicas is not None else self.max_replicas


def ray_endpoint(address: str) -> tuple[str, int] | None:
    """(host, port) a TCP connect can test for ``address`` (``HOST[:PORT]``, ``ray://HOST[:PORT]``); None: "auto"."""
    if address in ("auto", ""):
        return None
    client = address.startswith("ray://")
    rest = address.removeprefix("ray://")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        host, port = rest, str(CLIENT_PORT if client else GCS_PORT)
    return host.strip("[]"), int(port)


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    endpoint = ray_endpoint(address)
    if endpoint is None:
        return
    try:
        with socket.create_connection(endpoint, timeout=timeout):
            pass
    except OSError as exc:
        raise RayUnavailable(
            f"no Ray cluster answers at {address} ({exc}); start one with `ray start --head` on the head "
            "machine, or use --ray local to run Ray inside this gateway"
        ) from exc


def connect(address: str, *, num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Join the cluster at ``address``, or start a local one (``local``); ``RayUnavailable`` when that fails."""
    import ray

    if ray.is_initialized():
        return
    try:
        if address == "local":
            ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False)
        else:
            check_reachable(address)
            ray.init(address=address)
    except RayUnavailable:
        raise
    except (ConnectionError, RuntimeError, TimeoutError) as exc:
        raise RayUnavailable(f"could not join the Ray cluster at {address}: {exc}") from exc


def deploy(config: ServerConfig, plan: ReplicaPlan, factory: str | None = None) -> Any:
    """Run the replicas (waits until they are up) and return the deployment handle."""
    from ray import serve

    from .replica import engine_deployment

    app = engine_deployment(config, factory=factory, replicas=plan.replicas, min_replicas=plan.min_replicas,
                            max_replicas=plan.max_replicas, gpus=plan.gpus, cpus=plan.cpus)
    serve.start(proxy_location="Disabled")  # jobs come through the gateway's socket, never Serve's HTTP
    try:
        return serve.run(app, name=APP_NAME, route_prefix=None)
    except RuntimeError as exc:  # a replica that failed to start (no GPU left, engine import failed)
        raise RayUnavailable(f"the engine replicas did not start: {exc}") from exc


def attach() -> Any:
    """The handle of replicas deployed elsewhere (a Serve config, a KubeRay RayService: ``replica.app_builder``)."""
    from ray import serve

    try:
        return serve.get_deployment_handle(DEPLOYMENT, app_name=APP_NAME)
    except Exception as exc:  # Serve is not running there, or the application has another name
        raise RayUnavailable(f"no Serve application {APP_NAME!r} with a deployment {DEPLOYMENT!r} on this Ray "
                             f"cluster ({exc}); deploy it (docs/STUDIO.md) or leave out --attach") from exc


def undeploy() -> None:
    from ray import serve

    serve.delete(APP_NAME)
