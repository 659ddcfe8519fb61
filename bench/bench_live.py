"""Live mode in the real Krita: stroke -> first preview in the live layer -> result, and the cost of a change check.

Runs ``tests/e2e/krita/scripts/live_e2e.py`` inside real Krita 5 under Xvfb (a fresh profile with the plugin
installed by the real installer), the backend on the built-in tiny model on CPU, with ``--strokes`` strokes,
and prints a markdown table of median / p95 / max; ``--write`` puts it into bench/RESULTS.md (the section
"## Krita: live mode", replaced when it is there):

    flock /tmp/lb-krita-e2e.lock .venv/bin/python bench/bench_live.py --strokes 20 --write

Needs krita, xvfb-run and xauth (``installers/test.sh`` installs them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "e2e" / "krita"))

from krita_runner import backend_env, missing_tools, prepare_profile, run_script  # noqa: E402

SECTION = "## Krita: live mode"
DATE = "2026-12-02"


def quantiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return at(0.5), at(0.95), ordered[-1]


def seconds_row(name: str, values: list[float]) -> str:
    median, p95, top = quantiles(values)
    return f"| {name} | {len(values)} | {median:.3f} s | {p95:.3f} s | {top:.3f} s |"


def ms_row(name: str, stats: dict) -> str:
    return f"| {name} | {stats['n']} | {stats['median']:.2f} ms | {stats['p95']:.2f} ms | {stats['max']:.2f} ms |"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} cores (load average {load:.1f})"


FRAME_MS = 1000 / 60  # the stated bound: a check never costs the painter a 60 Hz frame


def notes(r: dict) -> list[str]:
    worst = max(r["check_live_ms"]["p95"], r["check_live_ms"]["max"])
    verdict = "within" if worst < FRAME_MS else "**over**"
    return [
        f"- Bound: a check blocks Krita's UI thread for less than one 60 Hz frame ({FRAME_MS:.1f} ms), at p95 and "
        f"max. This run: p95 {r['check_live_ms']['p95']:.2f} ms, max {r['check_live_ms']['max']:.2f} ms: {verdict} "
        "the bound. No check reads the canvas at full resolution; for comparison the last row is one full read of "
        "a 2048×1536 layer.",
        "- A check's cost is the number of `pixelData` calls (one per sampled row, about 10 µs each) more than "
        "pixels: the 2048×1536 canvas (32 rows of 2048) checks faster than the 512×384 one (128 rows of 512). "
        "During the run the checks share 2 cores with the backend's torch threads, hence the longer tail.",
        "- The latencies include the debounce (a change is acted on one 150 ms check after it was seen) and, on "
        "this shared 2-core box, the backend's swings under load (see *Backend* above: OpenMP threads wait on "
        "each other when one is descheduled); the tiny model's job itself is 2 steps (4 steps at 60 %).",
        "- Event-loop gaps while jobs run are mostly Krita redrawing the canvas with llvmpipe (software OpenGL "
        "under Xvfb) after each picture, and each job's capture of the canvas without the live layer "
        "(`refreshProjection` twice); the checks alone are the \"quiet canvas\" row.",
        "",
    ]


def table(r: dict, strokes: int) -> str:
    s = r["strokes"]
    lines = [
        SECTION, "",
        "`bench/bench_live.py` (the scenario of `tests/e2e/krita/scripts/live_e2e.py`): the docker's Live tab in "
        f"the real Krita {r['krita']} under Xvfb, Refine of a 256×192 selection of a 512×384 scene, 4 steps at "
        f"60 % strength, the fixed live seed; each stroke a 24×24 `setPixelData` dab on the painter's active "
        f"layer, then a wait for its result. Change checks every {r['poll_ms']} ms; a change starts a job one "
        f"check after it was first seen (debounce); the server supersedes the stale job (`stream`).", "",
        f"### CPU: {DATE}, {machine()}, **tiny model, CPU**, {strokes} strokes", "",
        "| from the stroke to | n | median | p95 | max |",
        "|---|---|---|---|---|",
        seconds_row("the check that saw it", [x["detect_s"] for x in s]),
        seconds_row("the job submitted", [x["submit_s"] for x in s]),
        seconds_row("the first preview in the live layer", [x["first_preview_s"] for x in s if x["first_preview_s"]]),
        seconds_row("the result in the live layer", [x["result_s"] for x in s]),
        "",
        "| change check (UI thread blocked once per check) | n | median | p95 | max |",
        "|---|---|---|---|---|",
        ms_row("every check live made during the run", r["check_live_ms"]),
        ms_row("the live context box (256×192 selection's context)", r["check_context_ms"]),
        ms_row("whole 512×384 canvas, no selection", r["check_canvas_512_ms"]),
        ms_row("whole 2048×1536 canvas, no selection (64 Ki px budget: 32 of 1536 rows)", r["check_canvas_2048_ms"]),
        ms_row("for comparison: one full-resolution read + CRC of that 2048×1536 layer", r["full_read_2048_ms"]),
        "",
        "| event loop: tick-to-tick gaps of a 5 ms QTimer in Krita's UI thread | n | median | p95 | max |",
        "|---|---|---|---|---|",
        ms_row("live off, 3 s", r["loop_gaps_off_ms"]),
        ms_row("live on, quiet canvas (checks only), 3 s", r["loop_gaps_quiet_ms"]),
        ms_row("live on, while the strokes' jobs ran (capture, previews, results, backend on the same cores)",
               r["loop_gaps_ms"]),
        "",
        *notes(r),
    ]
    return "\n".join(lines)


def write_section(text: str, results_md: Path) -> None:
    old = results_md.read_text(encoding="utf-8")
    start = old.find(SECTION)
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        end = old.find("\n## ", start + len(SECTION))
        new = old[:start] + text + ("" if end < 0 else old[end:])
    results_md.write_text(new if new.endswith("\n") else new + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--strokes", type=int, default=20)
    parser.add_argument("--checks", type=int, default=300)
    parser.add_argument("--write", action="store_true", help="put the table into bench/RESULTS.md")
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--json", type=Path, help="also keep the scenario's raw results here")
    parser.add_argument("--from-json", type=Path, help="only make the table from results kept with --json")
    args = parser.parse_args()
    if args.from_json is not None:
        r = json.loads(args.from_json.read_text(encoding="utf-8"))
    else:
        why = missing_tools()
        if why:
            print(why, file=sys.stderr)
            return 2
        with tempfile.TemporaryDirectory(prefix="lb-bench-live-") as tmp:
            home, out = Path(tmp) / "home", Path(tmp) / "out"
            home.mkdir()
            prepare_profile(home)
            env = {**backend_env(), "LB_LIVE_STROKES": str(args.strokes), "LB_LIVE_CHECKS": str(args.checks)}
            run = run_script(home, "live_e2e", out, timeout_s=args.timeout, extra_env=env)
        r = run.results
        if run.rc != 0 or run.e2e_rc != "0" or not r.get("ok"):
            print(run.describe(), file=sys.stderr)
            print(r, file=sys.stderr)
            return 1
        if args.json is not None:
            args.json.write_text(json.dumps(r, indent=1), encoding="utf-8")
    text = table(r, len(r["strokes"]))
    print(text)
    if args.write:
        write_section(text, REPO / "bench" / "RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
