"""``latentbrush server install|update|repair|uninstall|status``: the managed local server.

The server gets its own venv (``latentbrush.plugin.core.install`` plans and runs the steps) under the
user's data folder, or ``--home``. This is how GIMP users install it; Krita's docker runs the same plan.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import TextIO

from latentbrush.plugin.core.install.errors import InstallError, InstallFailed
from latentbrush.plugin.core.install.layout import (
    HOME_ENV,
    InstallLayout,
    default_layout,
    default_root,
    is_installed,
    layout_at,
    server_command,
)
from latentbrush.plugin.core.install.machine import detect_machine, torch_choice
from latentbrush.plugin.core.install.plan import InstallPlan, Step, bundled_wheel, find_tools, make_plan
from latentbrush.plugin.core.install.runner import run_plan
from latentbrush.plugin.core.install.state import InstallState, read_state

from .main import EXIT_JOB_FAILED, EXIT_OK, EXIT_USAGE

ACTIONS = ("install", "update", "repair", "uninstall", "status")
DOWNLOAD_HINT = "downloads about 2.5 GB (torch) and needs about 6 GB of disk"
PACKAGE_DIR = Path(__file__).resolve().parents[2]  # the latentbrush package (plugin/ and protocol/ beside)


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("server", help="install, update, repair or remove the local server (in its own Python env)",
                       description="Manage the local latentbrush server: its own Python environment with PyTorch "
                                   "for this computer's GPU, kept apart from everything else.")
    p.add_argument("action", choices=ACTIONS, help="status shows where it lives, what is installed and how to start it")
    p.add_argument("-y", "--yes", action="store_true", help="go ahead without asking")
    p.add_argument("--wheel", type=Path, metavar="PATH",
                   help="install latentbrush from this wheel (default: the one bundled with the plugin, if any, "
                        "else the package index)")
    p.add_argument("--home", type=Path, metavar="DIR",
                   help=f"where the server lives (default {default_root()}; or set ${HOME_ENV})")
    p.add_argument("--models", action="store_true", help="with uninstall: remove the models folder too")
    p.add_argument("--progress", choices=("text", "json"), default="text",
                   help="json: one JSON object per line on stdout, for programs (default text)")


def command_line(argv: list[str]) -> str:
    return subprocess.list2cmdline(argv) if os.name == "nt" else shlex.join(argv)


def _layout(args: argparse.Namespace) -> InstallLayout:
    return layout_at(args.home.expanduser().absolute()) if args.home else default_layout()


def _wheel(args: argparse.Namespace, state: InstallState | None) -> Path | None:
    if args.wheel is not None:
        if not args.wheel.is_file():
            raise InstallError(f"--wheel {args.wheel}: no such file")
        return args.wheel.expanduser().absolute()
    recorded = Path(state.source) if state and state.source and args.action == "repair" else None
    if recorded is not None and recorded.is_file():
        return recorded  # repair puts back what was there
    return bundled_wheel(PACKAGE_DIR)


class Reporter:
    """What the user (text on stderr) or a program (JSON lines on stdout) sees while a plan runs."""

    def __init__(self, plan: InstallPlan, mode: str, out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.plan, self.mode = plan, mode
        self.out, self.err = out or sys.stdout, err or sys.stderr

    def emit(self, event: str, **fields: object) -> None:
        if self.mode == "json":
            print(json.dumps({"event": event, **fields}), file=self.out, flush=True)

    def say(self, text: str) -> None:
        if self.mode == "json":
            self.emit("message", text=text)
        else:
            print(text, file=self.err, flush=True)

    def step(self, index: int, step: Step) -> None:
        count = len(self.plan.steps)
        self.emit("step", index=index, count=count, title=step.title, progress=round(self.plan.progress(index), 4))
        if self.mode == "text":
            print(f"[{index + 1}/{count}] {step.title} ({self.plan.progress(index):.0%} done)", file=self.err,
                  flush=True)

    def output(self, line: str) -> None:
        self.emit("output", line=line)
        if self.mode == "text" and line.strip():
            print(f"    {line}", file=self.err, flush=True)


def _describe(plan: InstallPlan, tool: str) -> list[str]:
    lines = [f"latentbrush server {plan.action} in {plan.layout.root} (with {tool})"]
    if plan.torch is not None:
        lines.append(f"  PyTorch: {plan.torch.label}: {' '.join(plan.torch.install_args())}")
    if any("PyTorch" in step.title for step in plan.steps):
        lines.append(f"  This {DOWNLOAD_HINT}.")
    lines += [f"  {note}" for note in plan.notes]
    return lines


def _confirm(args: argparse.Namespace, reporter: Reporter) -> bool:
    if args.yes:
        return True
    if args.progress == "json" or not sys.stdin.isatty():
        reporter.say("Nothing was changed: add --yes to go ahead without being asked.")
        return False
    answer = input("Go ahead? [y/N] ").strip().lower()
    return answer in ("y", "yes")


def run_server_command(args: argparse.Namespace) -> int:
    try:
        layout = _layout(args)
        if args.action == "status":
            return print_status(layout, args.progress)
        return _run_action(args, layout)
    except InstallError as exc:
        print(f"latentbrush server {args.action}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"latentbrush server {args.action}: interrupted; run it again (or `latentbrush server repair`) "
              "to finish", file=sys.stderr)
        return EXIT_JOB_FAILED


def _run_action(args: argparse.Namespace, layout: InstallLayout) -> int:
    state = read_state(layout.state_file)
    if args.action == "install" and is_installed(layout):
        print(f"The server is already installed in {layout.root} (latentbrush {state.version if state else '?'}). "
              "`latentbrush server update` updates it, `latentbrush server repair` fixes it.", file=sys.stderr)
        return EXIT_OK
    if args.action == "uninstall" and not (layout.venv.exists() or layout.state_file.exists() or
                                           (args.models and layout.models_dir.exists())):
        print(f"Nothing to uninstall in {layout.root}.", file=sys.stderr)
        return EXIT_OK
    tools = find_tools()
    plan = make_plan(args.action, layout, detect_machine(), tools, _wheel(args, state), state=state,
                     remove_models=args.models)
    reporter = Reporter(plan, args.progress)
    reporter.emit("plan", action=plan.action, root=str(layout.root), steps=[s.title for s in plan.steps],
                  torch=plan.torch.label if plan.torch else None, notes=list(plan.notes))
    if args.progress == "text":
        print("\n".join(_describe(plan, tools.name)), file=sys.stderr)
    if not _confirm(args, reporter):
        return EXIT_USAGE
    layout.root.mkdir(parents=True, exist_ok=True)
    with open(layout.log_file, "a", encoding="utf-8") as log:
        try:
            run_plan(plan, log, reporter.step, reporter.output)
        except InstallFailed as exc:
            reporter.emit("failed", message=str(exc))
            print(f"latentbrush server {args.action}: {exc}", file=sys.stderr)
            return EXIT_JOB_FAILED
    reporter.emit("done", progress=1.0, notes=list(plan.notes))
    _report_done(plan, layout)
    return EXIT_OK


def _report_done(plan: InstallPlan, layout: InstallLayout) -> None:
    if plan.action == "uninstall":
        print("The server is uninstalled.", *plan.notes, file=sys.stderr)
        return
    state = read_state(layout.state_file)
    build = state.torch_build if state else ""
    print(f"The server is ready in {layout.root}" + (f" (torch {build})" if build else "") + ".", file=sys.stderr)
    print(f"Start it with: {command_line(server_command(layout))}", file=sys.stderr)


def _count_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0


def print_status(layout: InstallLayout, mode: str = "text", out: TextIO | None = None) -> int:
    """Where the server lives, what is installed and the command that starts it."""
    out = out or sys.stdout
    state = read_state(layout.state_file)
    installed = is_installed(layout)
    machine = detect_machine()
    try:
        fitting = torch_choice(machine).label
    except InstallError as exc:
        fitting = str(exc)
    info: dict[str, object] = {
        "installed": installed, "root": str(layout.root), "venv": str(layout.venv), "python": str(layout.python),
        "models_dir": str(layout.models_dir), "log_file": str(layout.log_file), "state_file": str(layout.state_file),
        "version": state.version if state else None, "torch": state.torch_label if state else None,
        "torch_build": state.torch_build if state else None, "installed_at": state.installed_at if state else None,
        "source": state.source if state else None, "command": server_command(layout),
        "machine": {"platform": machine.platform, "arch": machine.arch, "gpu": machine.gpu, "torch": fitting},
    }
    if mode == "json":
        print(json.dumps(info, indent=2), file=out)
        return EXIT_OK
    lines = [f"latentbrush server: {'installed' if installed else 'not installed'}",
             f"  folder:      {layout.root}",
             f"  Python env:  {layout.venv}",
             f"  models:      {layout.models_dir} ({_count_files(layout.models_dir)} files)",
             f"  install log: {layout.log_file}"]
    if state is not None:
        source = state.source or "the package index"
        lines += [f"  version:     latentbrush {state.version} (from {source})",
                  f"  torch:       {state.torch_label}" + (f": {state.torch_build}" if state.torch_build else ""),
                  f"  installed:   {state.installed_at} with {state.tool}"]
    lines.append(f"  this computer: {machine.platform} {machine.arch}, GPU: {machine.gpu} -> torch {fitting}")
    if installed:
        lines.append(f"Start it with: {command_line(server_command(layout))}")
    elif state is not None:
        lines.append("The Python environment is missing or broken: `latentbrush server repair` fixes it.")
    else:
        lines.append("Install it with: latentbrush server install")
    print("\n".join(lines), file=out)
    return EXIT_OK
