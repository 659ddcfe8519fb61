"""Stand-in for ``latentbrush-server`` inside a chroot: a TCP forwarder to the backend on the host.

Krita's docker (local-server mode) starts its configured server command and learns the URL from
the line ``latentbrush-server listening on ws://...``. Inside the chroot there is no torch, so the
e2e configures this script as that command: it listens on a free loopback port of its own, prints
*that* URL, and forwards every connection byte for byte to the host backend (``LB_HOST_BACKEND_URL``;
the chroot shares the host's network). Killing this process therefore drops the plugin's connection
exactly as a dead server would, and Restart starts a new one. The GIMP scenario uses it the same way.

The backend accepts a handshake only when its Host header names the backend's own address and port
(DNS-rebinding guard, ``backend/auth.py: allowed_host``), so the forwarder rewrites that one header of
the HTTP upgrade request; the token (Authorization) and everything after the request head pass as
they are. Extra arguments the docker appends (``--port 0``) are ignored. Standard library only (runs
on the chroot's python3).
"""

import os
import signal
import socket
import sys
import threading
from urllib.parse import urlsplit

HEAD_LIMIT = 64 * 1024  # an upgrade request head is a few hundred bytes


def with_host(head: bytes, host: str) -> bytes:
    """The HTTP request head with its Host header replaced by ``host``."""
    lines = head.split(b"\r\n")
    return b"\r\n".join(b"Host: " + host.encode() if line.lower().startswith(b"host:") else line for line in lines)


def pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def forward(client: socket.socket, target: tuple[str, int]) -> None:
    head = b""
    while b"\r\n\r\n" not in head and len(head) < HEAD_LIMIT:
        chunk = client.recv(65536)
        if not chunk:
            client.close()
            return
        head += chunk
    end = head.find(b"\r\n\r\n") + 4
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError as exc:
        print(f"attach_backend: cannot reach the backend at {target}: {exc}", file=sys.stderr, flush=True)
        client.close()
        return
    upstream.settimeout(None)
    upstream.sendall(with_host(head[:end], f"{target[0]}:{target[1]}") + head[end:])
    threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
    pipe(client, upstream)


def main() -> int:
    url = os.environ.get("LB_HOST_BACKEND_URL", "")
    parts = urlsplit(url)
    if parts.scheme != "ws" or not parts.hostname or not parts.port:
        print("attach_backend: LB_HOST_BACKEND_URL must be the host backend's ws://HOST:PORT URL", file=sys.stderr)
        return 2
    target = (parts.hostname, parts.port)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    print(f"latentbrush-server listening on ws://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    while True:  # until the docker terminates (or a test kills) us
        client, _ = listener.accept()
        threading.Thread(target=forward, args=(client, target), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
