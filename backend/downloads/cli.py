"""``latentbrush-server models list|download`` and ``latentbrush-server doctor``.

Dispatched by ``__main__.main`` before the server's own argument parser runs, so the server's flags stay as
they are. Exit codes: 0 done, 1 failed (network, gated repo, damaged file, disk), 2 not done because of the
command itself (unknown set, no models folder, download not confirmed).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .progress import JsonLines, TextLine, human

SUBCOMMANDS = ("models", "doctor")
DONE, FAILED, USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="latentbrush-server", description="latentbrush backend: models and checks")
    commands = p.add_subparsers(dest="command", required=True)
    models = commands.add_parser("models", help="list or download the recommended model sets")
    actions = models.add_subparsers(dest="action", required=True)

    listing = actions.add_parser("list", help="the recommended sets, their sizes and what the models folder has")
    listing.add_argument("--json", action="store_true", help="print one JSON object")

    fetch = actions.add_parser("download", help="download sets into the models folder (asks first)")
    fetch.add_argument("sets", nargs="+", metavar="SET", help="set names, as `models list` shows them")
    fetch.add_argument("--cache", action="store_true",
                       help="keep the files in the Hugging Face cache and link them into the models folder")
    fetch.add_argument("--yes", "-y", action="store_true", help="do not ask before downloading")
    fetch.add_argument("--dry-run", action="store_true", help="show what would download, download nothing")
    fetch.add_argument("--progress", choices=["text", "json"], default="text",
                       help="json: one JSON event per line on stdout, for programs (default: text on stderr)")

    doctor = commands.add_parser("doctor", help="check the Python, torch, GPU and models setup")
    doctor.add_argument("--json", action="store_true", help="print one JSON object")

    for sub in (listing, fetch, doctor):
        sub.add_argument("--models", type=Path, default=None, metavar="DIR", help="the models folder")
        sub.add_argument("--sets-file", type=Path, default=None, help=argparse.SUPPRESS)  # tests: other sets
    return p


def setup_logging() -> None:
    """Warnings and errors on stderr; an HF_TOKEN value never appears in them."""
    from .. import redact

    secrets = redact.SecretFilter()
    token = os.environ.get("HF_TOKEN")
    if token:
        secrets.add_secret(token)
    handler = logging.StreamHandler(sys.stderr)
    redact.install(secrets, [handler])
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(levelname)s %(name)s: %(message)s")


def run_subcommand(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(list(argv))
    setup_logging()
    if args.command == "doctor":
        from .doctor import run_doctor

        return run_doctor(args.models, args.json, args.sets_file)
    from .sets import SetsError, load_sets

    try:
        sets = load_sets(args.sets_file)
    except SetsError as exc:
        print(f"latentbrush-server: {exc}", file=sys.stderr)
        return USAGE
    if args.action == "list":
        return list_sets(sets, args.models, args.json)
    return download_sets(sets, args)


def set_rows(sets: Sequence, models_dir: Path | None) -> list[dict]:
    from .plan import item_state, set_state

    folder = models_dir if models_dir is not None and models_dir.is_dir() else None  # None: states unknown
    return [{
        "name": s.name, "title": s.title, "description": s.description, "size_bytes": s.size,
        "licences": list(s.licences), "gated": s.gated, "state": set_state(s, folder) if folder else None,
        "items": [{"repo": i.repo, "dest": i.dest, "size_bytes": i.size, "licence": i.licence, "gated": i.gated,
                   "note": i.note, "state": item_state(i, folder) if folder else None} for i in s.items],
    } for s in sets]


def list_sets(sets: Sequence, models_dir: Path | None, as_json: bool) -> int:
    rows = set_rows(sets, models_dir)
    if as_json:
        print(json.dumps({"models_dir": str(models_dir) if models_dir else None, "sets": rows}, indent=2))
        return DONE
    for row in rows:
        state = f"  [{row['state']}]" if row["state"] else ""
        gated = "  gated: accept its licence on the Hub and set HF_TOKEN" if row["gated"] else ""
        print(f"{row['name']:<14} {human(row['size_bytes']):>9}  {', '.join(row['licences'])}{gated}{state}")
        print(f"{'':<14} {row['title']}")
    if models_dir is None:
        print("\n(add --models DIR to see what a models folder already has)")
    print("\ndownload with: latentbrush-server models download SET... --models DIR")
    return DONE


def download_sets(sets: Sequence, args: argparse.Namespace) -> int:
    from .errors import DownloadError
    from .fetch import download
    from .plan import make_plan
    from .sets import SetsError, select

    as_json = args.progress == "json"
    events = JsonLines()
    text = TextLine()

    def fail(message: str, code: int) -> int:
        if as_json:
            events.emit("error", message=message)
        print(f"latentbrush-server: {message}", file=sys.stderr)
        return code

    try:
        chosen = select(tuple(sets), list(args.sets))
    except SetsError as exc:
        return fail(str(exc), USAGE)
    if args.models is None:
        return fail("no models folder given: add --models DIR (the folder the server reads with --models)", USAGE)
    models_dir: Path = args.models.expanduser()
    try:
        models_dir.mkdir(parents=True, exist_ok=True)
        plan = make_plan(chosen, models_dir)
    except DownloadError as exc:
        return fail(str(exc), FAILED)
    except OSError as exc:
        return fail(f"cannot use the models folder {models_dir}: {exc.strerror or exc}", FAILED)
    if as_json:
        events.emit("plan", total_bytes=plan.total_bytes, present_bytes=plan.present_bytes, files=[
            {"set": f.set_name, "repo": f.repo, "file": f.path, "dest": f.dest, "size": f.size, "licence": f.licence,
             "gated": f.gated, "present": f.present} for f in plan.files])
    else:
        describe_plan(plan, models_dir, args.cache)
    if not plan.to_fetch:
        if as_json:
            events.emit("done", downloaded_bytes=0)
        else:
            print("everything is already in place; nothing to download", file=sys.stderr)
        return DONE
    if args.dry_run:
        return DONE
    if not args.yes and not confirm(f"Download {human(plan.total_bytes)} into {models_dir}? [y/N] "):
        return fail("nothing was downloaded (not confirmed; add --yes to download without asking)", USAGE)
    try:
        download(plan, models_dir, cache=args.cache, on_progress=events.progress if as_json else text.progress)
    except DownloadError as exc:
        return fail(str(exc), FAILED)
    except KeyboardInterrupt:
        return fail("stopped; run the same command again to resume", FAILED)
    if as_json:
        events.emit("done", downloaded_bytes=plan.total_bytes)
    else:
        print(f"done: {len(plan.to_fetch)} files, {human(plan.total_bytes)}, in {models_dir}", file=sys.stderr)
    return DONE


def describe_plan(plan, models_dir: Path, cache: bool) -> None:
    out = sys.stderr
    where = "the Hugging Face cache, linked into " if cache else ""
    print(f"To download into {where}{models_dir}:", file=out)
    for f in plan.to_fetch:
        gated = ", gated" if f.gated else ""
        print(f"  {f.dest:<60} {human(f.size):>9}  ({f.repo}, {f.licence}{gated})", file=out)
    present = [f for f in plan.files if f.present]
    if present:
        print(f"  already in place: {len(present)} files, {human(plan.present_bytes)}", file=out)
    print(f"Total: {human(plan.total_bytes)}. Each model's licence applies to its use; see its Hub page.", file=out)


def confirm(question: str) -> bool:
    """Ask on the terminal; False without one (a program passes --yes after showing the plan)."""
    if not sys.stdin or not sys.stdin.isatty():
        return False
    try:
        print(question, end="", file=sys.stderr, flush=True)  # stdout may carry --progress json
        return input().strip().lower() in ("y", "yes")
    except EOFError:
        return False
