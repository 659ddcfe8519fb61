"""Stand-in for ``latentbrush-server`` inside a chroot: the real backend already runs on the host.

Krita's docker (local-server mode) starts its configured server command and learns the URL from
the line ``latentbrush-server listening on ws://...``. Inside the chroot there is no torch, so the
e2e configures this script as that command: it prints the host backend's URL (``LB_HOST_BACKEND_URL``;
the chroot shares the host's network) and then lives until the docker stops it, like the real
server. Everything the plugin does after that talks to the real backend. Extra arguments the
docker appends (``--port 0``) are ignored. Standard library only (runs on the chroot's python3).
"""

import os
import signal
import sys


def main() -> int:
    url = os.environ.get("LB_HOST_BACKEND_URL", "")
    if not url.startswith(("ws://", "wss://")):
        print("attach_backend: LB_HOST_BACKEND_URL must be the host backend's ws:// URL", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"latentbrush-server listening on {url}", flush=True)
    signal.pause()  # until the docker terminates us
    return 0


if __name__ == "__main__":
    sys.exit(main())
