"""``latentbrush-cluster`` as a process: a Ray head nobody runs is a clear error and exit code 1."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

pytest.importorskip("ray", reason="Ray is not installed (pip install 'latentbrush[cluster]')")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cluster(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "latentbrush.backend.cluster", "--port", "0", "--token-file",
           str(tmp_path / "token"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_an_unreachable_ray_head_is_a_clear_error(tmp_path):
    done = cluster(tmp_path, "--ray", f"127.0.0.1:{free_port()}", "--replicas", "2")
    assert done.returncode == 1 and done.stdout == ""  # never claims to listen
    assert "no Ray cluster answers at 127.0.0.1:" in done.stderr and "ray start --head" in done.stderr


def test_replica_counts_that_cannot_work_are_usage_errors(tmp_path):
    done = cluster(tmp_path, "--ray", "local", "--min-replicas", "3", "--max-replicas", "2")
    assert done.returncode == 2 and "--min-replicas must be at most --max-replicas" in done.stderr


def test_a_broken_artists_file_stops_the_gateway_before_ray(tmp_path):
    artists = tmp_path / "artists.txt"
    artists.write_text("ana short\n", encoding="utf-8")
    done = cluster(tmp_path, "--ray", f"127.0.0.1:{free_port()}", "--artists", str(artists))
    assert done.returncode == 2 and "shorter than 16 characters" in done.stderr


def test_a_spool_folder_that_cannot_be_made_stops_the_gateway_before_ray(tmp_path):
    (tmp_path / "a-file").write_text("", encoding="utf-8")
    done = cluster(tmp_path, "--ray", f"127.0.0.1:{free_port()}", "--spool", str(tmp_path / "a-file" / "spool"))
    assert done.returncode == 2 and "cannot use the spool folder" in done.stderr


@pytest.mark.slow
def test_the_command_serves_a_job_on_local_ray_and_stops_cleanly(tmp_path):
    """The whole command: Ray started inside it, 2 CPU replicas, an artist's job through the socket, SIGINT."""
    import asyncio

    from helpers.live_server import START_TIMEOUT_S, _wait_listening, stop
    from latentbrush.protocol import Size
    from server_harness import TestClient, job, submit

    token = "ana-token-0123456789abcdef"
    (tmp_path / "artists.txt").write_text(f"ana {token}\n", encoding="utf-8")
    log = tmp_path / "cluster.log"
    cmd = [sys.executable, "-m", "latentbrush.backend.cluster", "--ray", "local", "--ray-cpus", "2", "--replicas", "2",
           "--cpus-per-replica", "0.5", "--device", "cpu", "--port", "0", "--token-file", str(tmp_path / "token"),
           "--artists", str(tmp_path / "artists.txt")]
    with open(log, "w", encoding="utf-8") as err:
        process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True)
    try:
        url = _wait_listening(process, log, START_TIMEOUT_S)

        async def scenario():
            async with TestClient.connect(url, token=token) as client:
                await client.send(submit(job("one", size=64, steps=3, resolution=Size(64, 64), preview_format="jpeg")))
                return await client.finish("one")

        trace = asyncio.run(scenario())
        assert trace.kinds[-1] == "done" and len(trace.previews) == 3 and trace.final.info["replica"]
    finally:
        code = stop(process, grace=60)
    assert code == 0, log.read_text(encoding="utf-8")[-3000:]
