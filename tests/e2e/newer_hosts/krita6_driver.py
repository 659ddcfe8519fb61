"""Krita 6 end to end in the sid chroot, reusing the Krita 5 e2e unchanged (tests/e2e/krita).

The Krita 5 tests run Krita through ``krita_runner.run_script``; this driver swaps in a version
that starts Krita 6 inside the chroot (same Xvfb screen, same harness plugin, same scripts), then
calls those test functions, so the scenario and every assertion are literally the same:
``test_document_adapter_in_real_krita`` (selection, reads, preview layer, result layer and undo,
cancel, batch, upscale, 16-bit) and ``test_plugin_jobs_with_the_real_backend`` (the docker connects,
inpaint with previews, cancel, refine, upscale), and the others in ``TESTS`` (``LB_KRITA6_TESTS=controls,history``
runs only those). The backend is the one run.sh started on the host;
the docker's "server command" is ``attach_backend.py`` (see there).

Paths are the same inside and outside the chroot (run.sh bind-mounts the repository and the output
folder at their own paths), so the JSON the scripts write needs no translation.

usage (root, chroot mounted by run.sh): krita6_driver.py CHROOT OUT_DIR BACKEND_URL TOKEN_FILE
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
KRITA_E2E = HERE.parent / "krita"
sys.path.insert(0, str(KRITA_E2E))

import krita_runner  # noqa: E402
import test_krita_control_e2e  # noqa: E402
import test_krita_e2e  # noqa: E402
import test_krita_history_e2e  # noqa: E402
import test_krita_live_e2e  # noqa: E402
import test_krita_selection_e2e  # noqa: E402
import test_krita_server_loss_e2e  # noqa: E402

KRITA_TIMEOUT_S = 300


def free_display(chroot: Path, first: int) -> int:
    """An X display number no X server uses right now, from ``first`` on (run.sh's lb_free_display, per
    launch): the previous test's Xvfb may still be exiting on the number the run started with."""
    sockets = Path("/proc/net/unix").read_text(encoding="utf-8", errors="replace")
    for n in range(first, 1000):
        taken = f"/tmp/.X11-unix/X{n}\n" in sockets + "\n" or any(
            (root / f"tmp/.X{n}-lock").exists() for root in (Path("/"), chroot))
        if not taken:
            return n
    raise RuntimeError("no free X display number")


def chroot_run_script(chroot: Path, url: str, token_file: Path):
    """A ``krita_runner.run_script`` that runs Krita 6 in ``chroot`` against the host backend."""

    def chroot_launcher(script_env: dict[str, str], timeout_s: int) -> tuple[list[str], None]:
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", **script_env,
            # the chroot has no torch: the docker's "local server" attaches to the host's backend
            "LB_E2E_SERVER_CMD": f"python3 {HERE / 'attach_backend.py'}",
            "LB_HOST_BACKEND_URL": url, "LATENTBRUSH_TOKEN_FILE": str(token_file),
        }
        command = ["chroot", str(chroot), "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in env.items()),
                   "xvfb-run", "-n", str(free_display(chroot, int(os.environ.get("LB_XVFB_DISPLAY", "200")))),
                   "-s", krita_runner.XVFB_SCREEN,
                   "timeout", "-k", "10", str(timeout_s), "krita", "--nosplash"]
        return command, None

    return functools.partial(krita_runner.run_script, launcher=chroot_launcher)


TESTS = (
    ("adapter", test_krita_e2e.test_document_adapter_in_real_krita),
    ("plugin_jobs", test_krita_e2e.test_plugin_jobs_with_the_real_backend),
    ("selection", test_krita_selection_e2e.test_selection_is_the_contract),
    ("history", test_krita_history_e2e.test_history_survives_save_close_and_reopen),
    ("server_loss", test_krita_server_loss_e2e.test_killed_local_server_ends_the_job_and_restart_runs_the_next),
    ("controls", test_krita_control_e2e.test_a_scribble_layer_steers_generate),
    ("live", test_krita_live_e2e.test_live_mode_follows_strokes),
)


def chosen(tests: tuple, names: str) -> tuple:
    """``tests`` limited to the comma-separated ``names`` (LB_KRITA6_TESTS; empty: all of them)."""
    wanted = {n.strip() for n in names.split(",") if n.strip()}
    unknown = wanted - {name for name, _ in tests}
    if unknown:
        raise SystemExit(f"LB_KRITA6_TESTS names unknown tests {sorted(unknown)}; known: {[n for n, _ in tests]}")
    return tuple(t for t in tests if not wanted or t[0] in wanted)


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    chroot, out, url, token_file = Path(argv[1]), Path(argv[2]), argv[3], Path(argv[4])
    os.environ.pop("LATENTBRUSH_UPDATE_SCREENSHOTS", None)  # the Krita 5 test would copy ours over its own
    tests = chosen(TESTS, os.environ.get("LB_KRITA6_TESTS", ""))
    for _, test in tests:  # each test module imported run_script from krita_runner: swap it in each
        sys.modules[test.__module__].run_script = chroot_run_script(chroot, url, token_file)  # type: ignore[attr-defined]
    home = out / "home"
    krita_runner.prepare_profile(home)  # the real installer, as for Krita 5
    report: dict = {"passed": False, "tests": {}}
    failed = []
    for name, test in tests:
        t = time.monotonic()
        try:
            test(home, out / name)
            report["tests"][name] = {"passed": True, "seconds": round(time.monotonic() - t, 1)}
            print(f"[krita6] {name}: passed in {time.monotonic() - t:.0f} s", flush=True)
        except Exception as exc:  # an AssertionError names the failing check; keep running the others
            failed.append(name)
            report["tests"][name] = {"passed": False, "error": f"{type(exc).__name__}: {exc}"[:4000]}
            print(f"[krita6] {name}: FAILED\n{traceback.format_exc()[-6000:]}", flush=True)
    shot = out / "plugin_jobs" / "krita-inpaint-preview.png"
    if shot.is_file():
        shutil.copy2(shot, out / "screenshot.png")
    report["passed"] = not failed
    (out / "report.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
