"""A loopback Hugging Face Hub for download tests: huggingface_hub talks to it as to huggingface.co.

    hub = FakeHub()
    hub.add("fake/tiny", "weights.safetensors", b"...")          # an LFS file (sha256 listed)
    hub.add("fake/tiny", "config.json", b"{}", lfs=False)        # a plain git file (blob id listed)
    with hub.running():
        point_huggingface_hub_at(hub.url, monkeypatch)           # HF_ENDPOINT and huggingface_hub.constants
        ...

It serves what huggingface_hub reads: ``/api/models/{repo}`` and ``/api/models/{repo}/revision/{rev}`` (the
siblings, with sizes, blob ids and LFS sha256 when ``?blobs=true``), and ``HEAD`` / ``GET``
``/{repo}/resolve/{rev}/{path}`` with ``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag``, ``X-Linked-Size``,
``Content-Length``, ``Accept-Ranges`` and ``Range`` requests (206). Switches: ``cut_next_get(n)`` sends only
the first ``n`` body bytes of the next file GET and then drops the connection (the Hub then answers 503 until
``restore()``, as a network that went away); ``gated`` repos answer 401 ``GatedRepo`` to file requests without an
accepted token; ``serve_instead`` serves other bytes than the listing describes. ``requests`` records every
request (method, path, Range header, whether it carried a token).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class FakeFile:
    content: bytes
    lfs: bool = True
    serve_instead: bytes | None = None  # what GET sends (a damaged file); the listing keeps describing content

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def blob_id(self) -> str:
        return hashlib.sha1(b"blob %d\0" % len(self.content) + self.content).hexdigest()

    @property
    def etag(self) -> str:
        return self.sha256 if self.lfs else self.blob_id


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    range: str | None
    authorized: bool


@dataclass
class FakeHub:
    repos: dict[str, dict[str, FakeFile]] = field(default_factory=dict)
    gated: dict[str, str] = field(default_factory=dict)  # repo -> the token that has accepted its licence
    requests: list[Seen] = field(default_factory=list)
    url: str = ""
    _cut_after: int | None = None
    _down: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, repo: str, path: str, content: bytes, lfs: bool = True, serve_instead: bytes | None = None) -> None:
        self.repos.setdefault(repo, {})[path] = FakeFile(content, lfs, serve_instead)

    def commit(self, repo: str) -> str:
        return hashlib.sha1(repo.encode()).hexdigest()

    def cut_next_get(self, after_bytes: int) -> None:
        self._cut_after = after_bytes

    def restore(self) -> None:
        self._cut_after, self._down = None, False

    def gets(self, path_suffix: str) -> list[Seen]:
        return [r for r in self.requests if r.method == "GET" and r.path.endswith(path_suffix)]

    @contextlib.contextmanager
    def running(self) -> Iterator[FakeHub]:
        hub = self

        class Handler(_Handler):
            fake = hub

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, name="fake-hub", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fake: FakeHub

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    # ------------------------------------------------------------------ routing

    def _answer(self, body: bool) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        auth = self.headers.get("Authorization", "")
        hub = self.fake
        with hub._lock:
            hub.requests.append(Seen(self.command, path, self.headers.get("Range"), bool(auth)))
            down = hub._down
        if down:
            return self._send(503, b"unavailable", {"X-Error-Message": "Service unavailable"}, body)
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            return self._model_info("/".join(parts[2:4]), parse_qs(url.query), body)
        if len(parts) >= 5 and parts[2] == "resolve":
            return self._resolve("/".join(parts[:2]), "/".join(parts[4:]), auth, body)
        return self._send(404, b"not found", {"X-Error-Code": "RepoNotFound"}, body)

    def _model_info(self, repo: str, query: dict[str, list[str]], body: bool) -> None:
        files = self.fake.repos.get(repo)
        if files is None:
            return self._send(401, b"Repository not found", {"X-Error-Code": "RepoNotFound"}, body)
        blobs = query.get("blobs", ["false"])[0].lower() == "true"
        siblings = []
        for name, f in sorted(files.items()):
            entry: dict = {"rfilename": name}
            if blobs:
                entry.update(size=len(f.content), blobId=f.blob_id)
                if f.lfs:
                    entry["lfs"] = {"size": len(f.content), "sha256": f.sha256, "pointerSize": 134}
            siblings.append(entry)
        info = {"id": repo, "modelId": repo, "sha": self.fake.commit(repo), "private": False,
                "gated": "manual" if repo in self.fake.gated else False, "siblings": siblings}
        self._send(200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body)

    def _resolve(self, repo: str, name: str, auth: str, body: bool) -> None:
        hub = self.fake
        files = hub.repos.get(repo)
        if files is None:
            return self._send(401, b"Repository not found", {"X-Error-Code": "RepoNotFound"}, body)
        accepted = hub.gated.get(repo)
        if accepted is not None and auth != f"Bearer {accepted}":
            headers = {"X-Error-Code": "GatedRepo",
                       "X-Error-Message": f"Access to model {repo} is restricted. You must accept its conditions."}
            return self._send(401 if not auth else 403, b"gated", headers, body)
        f = files.get(name)
        if f is None:
            return self._send(404, b"Entry not found", {"X-Error-Code": "EntryNotFound"}, body)
        data = f.serve_instead if f.serve_instead is not None else f.content
        headers = {"X-Repo-Commit": hub.commit(repo), "ETag": f'"{f.etag}"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        if f.lfs:
            headers.update({"X-Linked-Etag": f'"{f.etag}"', "X-Linked-Size": str(len(f.content))})
        start, status = 0, 200
        wanted = self.headers.get("Range")
        if wanted and wanted.startswith("bytes=") and self.command == "GET":
            start = int(wanted[len("bytes="):].split("-")[0])
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"}, body)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        payload = data[start:]
        cut = None
        if body:
            with hub._lock:
                cut, hub._cut_after = hub._cut_after, None
        if cut is None:
            return self._send(status, payload, headers, body)
        self._send_headers(status, len(payload), headers)
        self.wfile.write(payload[:cut])
        self.wfile.flush()
        with hub._lock:
            hub._down = True
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _send_headers(self, status: int, length: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _send(self, status: int, payload: bytes, headers: dict[str, str], body: bool) -> None:
        self._send_headers(status, len(payload), headers)
        if body:
            self.wfile.write(payload)


def point_huggingface_hub_at(url: str, monkeypatch, home) -> None:
    """Make huggingface_hub (already imported: it reads these at import) use the fake Hub, online, with no token.

    ``HF_ENDPOINT`` for anything that starts later, and the module constants huggingface_hub read at import:
    ``ENDPOINT`` and ``HUGGINGFACE_CO_URL_TEMPLATE`` (file URLs), ``HF_HUB_OFFLINE`` (the suite runs offline),
    the token file and the cache folder (both under ``home``, a test's temporary folder).
    """
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(home / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(home / "stored_tokens"))
