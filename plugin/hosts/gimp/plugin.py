"""The GIMP 3 plug-in: registers the procedures of ``procedures.PROCEDURES`` and runs them.

Process model: GIMP runs one plug-in process per call. A job procedure (Inpaint, Refine, Generate,
Upscale) keeps its process alive for the whole job: it runs the core's asyncio client and
controller in that process, writing every preview frame into the "[Preview]" layer as it arrives,
and returns when the job is done, cancelled or failed. GIMP stays responsive meanwhile (the
plug-in is another process), so the painter can pick Filters > latentbrush > Cancel Job, which
runs in a second process and signals the first through ``jobfiles`` (see there).
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

from gi.repository import Gegl, Gimp, GLib, GObject
from latentbrush.plugin.core import history as hs
from latentbrush.plugin.core.messages import op_label
from latentbrush.plugin.core.styles import BUILTIN_DIR, load_styles, user_styles_dir

from .host import GimpHost
from .jobfiles import JobFiles
from .procedures import (
    MENU_PATH,
    PLUGIN_BINARY,
    PROCEDURES,
    RETURN_VALUES,
    Arg,
    Procedure,
    procedure_named,
    server_url,
    with_styles,
)
from .runner import JobOutcome, run_operation

FLAGS = GObject.ParamFlags.READWRITE


def jobs_folder() -> Path:
    return Path(Gimp.directory()) / "latentbrush" / "jobs"


def _add_argument(proc: Gimp.Procedure, arg: Arg) -> None:
    if arg.kind == "string":
        proc.add_string_argument(arg.name, arg.label, arg.blurb, arg.default, FLAGS)
    elif arg.kind == "int":
        proc.add_int_argument(arg.name, arg.label, arg.blurb, int(arg.minimum), int(arg.maximum), arg.default, FLAGS)
    elif arg.kind == "uint":
        proc.add_uint_argument(arg.name, arg.label, arg.blurb, int(arg.minimum), int(arg.maximum), arg.default, FLAGS)
    elif arg.kind == "double":
        proc.add_double_argument(arg.name, arg.label, arg.blurb, arg.minimum, arg.maximum, arg.default, FLAGS)
    elif arg.kind == "boolean":
        proc.add_boolean_argument(arg.name, arg.label, arg.blurb, arg.default, FLAGS)
    elif arg.kind == "layer":  # none_ok: "no control" is the default (same call in GIMP 3.0 and 3.2)
        proc.add_layer_argument(arg.name, arg.label, arg.blurb, True, FLAGS)
    elif arg.kind == "choice":  # the dialog shows a drop-down; the config holds the value string
        choice = Gimp.Choice.new()
        for number, (value, label) in enumerate(arg.choices):
            choice.add(value, number, label, "")
        proc.add_choice_argument(arg.name, arg.label, arg.blurb, choice, arg.default, FLAGS)
    else:
        raise ValueError(f"arg.kind: unsupported argument kind {arg.kind!r} of {arg.name}")


def _add_return_value(proc: Gimp.Procedure, arg: Arg) -> None:
    if arg.kind == "image":
        proc.add_image_return_value(arg.name, arg.label, arg.blurb, True, FLAGS)
    elif arg.kind == "layer":
        proc.add_layer_return_value(arg.name, arg.label, arg.blurb, True, FLAGS)
    elif arg.kind == "int":
        proc.add_int_return_value(
            arg.name, arg.label, arg.blurb, int(arg.minimum), int(arg.maximum), arg.default, FLAGS
        )
    elif arg.kind == "uint":
        proc.add_uint_return_value(
            arg.name, arg.label, arg.blurb, int(arg.minimum), int(arg.maximum), arg.default, FLAGS
        )
    else:
        raise ValueError(f"arg.kind: unsupported return kind {arg.kind!r} of {arg.name}")


def _success(proc: Gimp.Procedure, outcome: JobOutcome) -> Gimp.ValueArray:
    values = proc.new_return_values(Gimp.PDBStatusType.SUCCESS, None)
    filled = [
        GObject.Value(Gimp.Image, outcome.image),
        GObject.Value(Gimp.Layer, outcome.layer),
        GObject.Value(GObject.TYPE_UINT, 0 if outcome.seed is None else int(outcome.seed)),
        GObject.Value(GObject.TYPE_INT, outcome.previews),
    ]
    # new_return_values() already holds a default per declared value: replace, do not append
    for index, value in enumerate(filled, start=1):
        if values.length() > index:
            values.remove(index)
        values.insert(index, value)
    return values


def _failure(proc: Gimp.Procedure, status: Gimp.PDBStatusType, message: str) -> Gimp.ValueArray:
    error = GLib.Error.new_literal(GLib.quark_from_string("latentbrush"), message, 0)
    return proc.new_return_values(status, error)


class LatentbrushPlugIn(Gimp.PlugIn):
    def do_query_procedures(self) -> list[str]:
        return [p.name for p in PROCEDURES]

    def do_set_i18n(self, name: str) -> bool:
        return False

    def do_create_procedure(self, name: str) -> Gimp.Procedure:
        spec = procedure_named(name)
        proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, self._run, None)
        proc.set_image_types("RGB*, GRAY*")
        proc.set_sensitivity_mask(
            Gimp.ProcedureSensitivityMask.DRAWABLE
            | Gimp.ProcedureSensitivityMask.DRAWABLES
            | Gimp.ProcedureSensitivityMask.NO_DRAWABLES
        )
        proc.set_menu_label(spec.label)
        proc.add_menu_path(MENU_PATH)
        proc.set_documentation(spec.blurb, spec.blurb, name)
        proc.set_attribution("latentbrush", "latentbrush contributors", "2026")
        for arg in with_styles(spec.args, load_styles(BUILTIN_DIR, user_styles_dir())[0]):  # the painter's too
            _add_argument(proc, arg)
        if spec.operation:
            for ret in RETURN_VALUES:
                _add_return_value(proc, ret)
        return proc

    def _run(self, procedure, run_mode, image, drawables, config, data):  # signature fixed by GIMP
        try:
            return self._run_procedure(procedure, run_mode, image, config)
        except Exception as exc:
            # GIMP shows the message; without return values it would only log "no return values"
            traceback.print_exc()
            Gimp.progress_end()
            return _failure(procedure, Gimp.PDBStatusType.EXECUTION_ERROR, f"latentbrush: internal error: {exc!r}")

    def _run_procedure(
        self, procedure: Gimp.Procedure, run_mode: Gimp.RunMode, image: Gimp.Image, config: Gimp.ProcedureConfig
    ) -> Gimp.ValueArray:
        spec = procedure_named(procedure.get_name())
        files = JobFiles(jobs_folder(), image.get_id())
        if not spec.operation:
            return self._cancel(procedure, files)
        if run_mode == Gimp.RunMode.INTERACTIVE and not _ask(procedure, config, spec):
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
        values = {arg.name: config.get_property(arg.name) for arg in spec.args}
        if spec.needs_selection and Gimp.Selection.is_empty(image):
            return _failure(procedure, Gimp.PDBStatusType.CALLING_ERROR, f"{spec.blurb}: select an area first")
        Gegl.init(None)  # GEGL operations (preview stretching) are not loaded in a plug-in until then
        Gimp.progress_init(f"latentbrush: {op_label(spec.operation)}")
        host = GimpHost(image)
        outcome = run_operation(host, spec.operation, values, url=server_url(values, os.environ), files=files)
        Gimp.progress_end()
        if outcome.status == hs.DONE:
            return _success(procedure, outcome)
        if outcome.status == hs.CANCELLED:
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
        return _failure(procedure, Gimp.PDBStatusType.EXECUTION_ERROR, outcome.message)

    @staticmethod
    def _cancel(procedure: Gimp.Procedure, files: JobFiles) -> Gimp.ValueArray:
        if files.request_cancel():
            return procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, None)
        return _failure(procedure, Gimp.PDBStatusType.EXECUTION_ERROR, "no latentbrush job is running on this image")


def _ask(procedure: Gimp.Procedure, config: Gimp.ProcedureConfig, spec: Procedure) -> bool:
    """The procedure dialog (GimpUi fills one widget per argument and remembers the last values)."""
    from gi.repository import GimpUi  # only interactive runs need GTK

    GimpUi.init(PLUGIN_BINARY)
    dialog = GimpUi.ProcedureDialog.new(procedure, config, "latentbrush: " + spec.label.replace("_", "").rstrip("."))
    if any(arg.name == "seed" for arg in spec.args):  # the seed only matters with "Random seed" off
        dialog.set_sensitive("seed", True, config, "random-seed", True)
    dialog.fill(None)
    try:
        return bool(dialog.run())
    finally:
        dialog.destroy()


def main(argv: list[str] | None = None) -> None:
    Gimp.main(LatentbrushPlugIn.__gtype__, list(sys.argv if argv is None else argv))
