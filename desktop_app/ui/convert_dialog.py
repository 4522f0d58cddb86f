"""Convert / Quantize: one job from a Hugging Face checkpoint (a folder or a Hub repo) or a float GGUF
to a file in the library.

The disk space is planned before Start is offered, again whenever an option changes; the plan (it
reads headers, and asks the Hub for a repo) and the job itself run through :func:`work.start`, so the
GUI thread only shows what comes back. Cancelling leaves the dialog open until the worker has
cleaned up, so "Cancelled" is only said once nothing half-made is left.
"""

from __future__ import annotations

import contextlib
import html
from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from PySide6.QtCore import QEvent, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.convert import pipeline
from desktop_app.core.convert.pipeline import ConvertRequest, DiskPlan, JobProgress, JobResult
from desktop_app.core.errors import Cancelled, CheckpointError, QuantDeskError
from desktop_app.core.units import format_bytes
from desktop_app.ui import work
from desktop_app.ui.context import AppContext
from desktop_app.ui.convert_options import ConvertOptions
from desktop_app.ui.widgets import muted

PLAN_DEBOUNCE_MS = 300
WARN_STYLE = "color: #b45309;"
ERROR_STYLE = "color: #b91c1c;"
OK_STYLE = "color: #15803d;"
KIND_LABELS = {"hub": "Hugging Face repo", "folder": "Checkpoint folder", "gguf": "GGUF file"}
MAX_CALIBRATION_BYTES = 64 * 1024 * 1024


def _kind_of(source: str) -> str:
    try:
        return pipeline.source_kind(source)
    except QuantDeskError:
        return "folder"  # the disk plan then says what is wrong with it


def run_job(req: ConvertRequest, calibration: str, *, progress, cancel) -> JobResult:
    """In the worker: read the calibration text ("default": QuantDesk's; else a file, or none), then
    run the whole job."""
    if calibration == "default":
        from desktop_app.core.convert.calibration import default_calibration_text

        req = replace(req, calibration=default_calibration_text())
    elif calibration:
        try:
            with open(calibration, encoding="utf-8", errors="replace") as f:
                req = replace(req, calibration=f.read(MAX_CALIBRATION_BYTES))
        except OSError as exc:
            raise CheckpointError(f"Could not read {Path(calibration).name}: {exc.strerror or exc}.") from exc
    return pipeline.run(req, progress=progress, cancel=cancel)


def phase_text(p: JobProgress) -> str:
    """What the job is doing, in the words the user sees under the progress bar."""
    if p.phase == "download":
        return f"Downloading {p.detail or 'the checkpoint'}…"
    if p.phase == "convert":
        return f"Converting {p.detail}" if p.detail else "Converting…"
    if p.phase == "imatrix":
        return f"Importance matrix: chunk {p.done} of {p.total}"
    if p.phase == "quantize":
        return f"Quantizing {p.done} of {p.total} tensors"
    return p.phase


class ConvertDialog(QDialog):
    """One conversion or quantization, from its options to the file in the library."""

    chat_requested = Signal(str)  # the finished file, to open in Chat
    plan_ready = Signal()  # a disk plan, or the reason there is none, is shown
    ended = Signal(str)  # "done" | "cancelled" | "failed", once the worker has ended
    progressed = Signal(object)  # JobProgress, from the worker thread

    running: ClassVar[set[ConvertDialog]] = set()  # for the window's "still running" question on quit

    def __init__(self, ctx: AppContext, source: str, *, quant: str | None = "Q4_K_M", outdir: str | Path | None = None,
                 parent: QWidget | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self.ctx = ctx
        self.source = source
        self.kind = _kind_of(source)
        self.outdir = str(outdir or pipeline.default_output_dir())
        self.plan: DiskPlan | None = None
        self.result: JobResult | None = None
        self.outcome = ""
        self._job: work.Job | None = None
        self._plan_gen = 0
        self._last_phase = ""
        self._close_when_done = False
        self.setWindowTitle("Convert / Quantize")
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setMinimumWidth(620)
        layout = QVBoxLayout(self)
        layout.setSpacing(10)
        self._build_source(layout)
        self.options = ConvertOptions(self.kind, quant)
        self.quant, self.outtype, self.keep = self.options.quant, self.options.outtype, self.options.keep
        layout.addWidget(self.options)
        self._build_status(layout)
        layout.addLayout(self._build_buttons())
        self._wire()
        self._options_changed()

    # -- building ------------------------------------------------------------------------------
    @property
    def source_name(self) -> str:
        return self.source if self.kind == "hub" else Path(self.source).name

    def _build_source(self, layout: QVBoxLayout) -> None:
        shown = self.source if self.kind != "gguf" else Path(self.source).name
        self.source_label = QLabel(f"{KIND_LABELS[self.kind]}: <b>{html.escape(shown)}</b>")
        self.source_label.setToolTip(self.source)
        self.source_label.setWordWrap(True)
        self.source_label.setObjectName("cardTitle")
        layout.addWidget(self.source_label)
        what = ("Quantize this GGUF with llama.cpp's quantizer." if self.kind == "gguf" else
                "Convert the checkpoint to GGUF, then quantize it if you choose a quant.")  # fmt: skip
        layout.addWidget(muted(f"{what} The result is saved in {self.outdir} and added to your library."))

    def _build_status(self, layout: QVBoxLayout) -> None:
        """The disk plan, the progress with its phase, and the outcome."""
        self.plan_label = QLabel()
        self.plan_label.setWordWrap(True)
        self.plan_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.plan_label)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.hide()
        layout.addWidget(self.progress)
        self.phase = muted("")
        self.phase.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(self.phase)
        self.outcome_label = QLabel()
        self.outcome_label.setWordWrap(True)
        self.outcome_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.outcome_label.hide()
        layout.addWidget(self.outcome_label)
        layout.addStretch(1)

    def _build_buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.chat_button = QPushButton("Chat with it")
        self.start_button = QPushButton("Start")
        self.start_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.close_button = QPushButton("Close")
        row.addStretch(1)
        for b in (self.chat_button, self.start_button, self.cancel_button, self.close_button):
            row.addWidget(b)
        return row

    def _wire(self) -> None:
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(PLAN_DEBOUNCE_MS)
        self._debounce.timeout.connect(self._plan)
        self.options.changed.connect(self._options_changed)
        self.progressed.connect(self._on_progress)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.close)
        self.chat_button.clicked.connect(self._chat)

    # -- options -------------------------------------------------------------------------------
    def chosen_quant(self) -> str | None:
        return self.options.chosen_quant()

    def request(self) -> ConvertRequest:
        return self.options.request(self.source, self.outdir)

    def _options_changed(self) -> None:
        """New options: a new disk plan once the user stops changing them."""
        self.plan = None
        self._plan_gen += 1
        self._say(self.plan_label, "Checking the disk space needed…", "")
        self._update_buttons()
        self._debounce.start()

    # -- the disk plan -------------------------------------------------------------------------
    def _plan(self) -> None:
        gen = self._plan_gen
        work.start(self, pipeline.disk_plan, self.request(), on_result=lambda plan: self._planned(gen, plan),
                   on_error=lambda exc: self._plan_failed(gen, exc))  # fmt: skip

    def _planned(self, gen: int, plan: DiskPlan) -> None:
        if gen != self._plan_gen:  # the options changed meanwhile: a newer plan is coming
            return
        self.plan = plan
        if plan.ok:
            self._say(self.plan_label, plan.describe(), "")
        else:
            self._say(self.plan_label, f"Not enough free space. {plan.describe()}", WARN_STYLE)
        self._update_buttons()
        self.plan_ready.emit()

    def _plan_failed(self, gen: int, exc: Exception) -> None:
        if gen != self._plan_gen:
            return
        self.plan = None
        self._say(self.plan_label, _message(exc), WARN_STYLE)
        self._update_buttons()
        self.plan_ready.emit()

    # -- the job -------------------------------------------------------------------------------
    def start(self) -> None:
        """Run the job in a worker; the options stay as they are until it ends."""
        if self._job is not None or self.plan is None or not self.plan.ok:
            return
        self.result, self.outcome, self._last_phase = None, "", ""
        self.progress.setValue(0)
        self.progress.show()
        self.outcome_label.hide()
        self.phase.setText("Starting…")
        self._job = work.start(self, run_job, self.request(), self.options.calibration(), progress=self._report,
                               cancellable=True, on_result=self._done, on_error=self._failed,
                               on_finished=self._finished)  # fmt: skip
        ConvertDialog.running.add(self)
        self._update_buttons()

    @property
    def busy(self) -> bool:
        return self._job is not None

    def _report(self, p: JobProgress) -> None:
        """On the worker thread: hand the progress to the GUI thread (nothing, once the dialog is gone)."""
        with contextlib.suppress(RuntimeError):
            self.progressed.emit(p)

    def _on_progress(self, p: JobProgress) -> None:
        if self._job is None or self._job.cancelled:
            return
        self._last_phase = p.phase
        self.progress.setValue(int(p.fraction * 1000))
        self.phase.setText(phase_text(p))

    def cancel(self) -> None:
        """Ask the job to stop; the dialog says so once the worker has cleaned up."""
        if self._job is None:
            return
        self._job.cancel()
        self.cancel_button.setEnabled(False)
        self.phase.setText("Cancelling…")

    def _done(self, result: JobResult) -> None:
        self.result, self.outcome = result, "done"
        self.plan_label.hide()  # the plan was for before; the result says what it took
        self.progress.setValue(1000)
        self.phase.setText("")
        kept = f"\nThe intermediate file is kept: {result.intermediate}" if result.intermediate else ""
        self._say(self.outcome_label, f"Done: {result.path}\n{format_bytes(result.bytes)}, made in "
                                      f"{result.seconds:.1f} s.{kept}", OK_STYLE)  # fmt: skip
        changed = False
        for path in filter(None, (result.path, result.intermediate)):
            changed |= self.ctx.settings.add_file(path)
        if changed:
            self.ctx.save_settings(rescan=True)
        else:
            self.ctx.rescan()
        self.ctx.notify(f"Made {Path(result.path).name}: it is in your library.")

    def _failed(self, exc: Exception) -> None:
        self.phase.setText("")
        if isinstance(exc, Cancelled):
            self.outcome = "cancelled"
            resume = " The download so far is kept and resumes next time." if self._last_phase == "download" else ""
            self._say(self.outcome_label, f"Cancelled; nothing half-made was kept.{resume}", "")
        else:
            self.outcome = "failed"
            self._say(self.outcome_label, _message(exc), ERROR_STYLE)

    def _finished(self) -> None:
        self._job = None
        ConvertDialog.running.discard(self)
        self.progress.setVisible(self.outcome == "done")
        self._update_buttons()
        self.ended.emit(self.outcome)
        if self._close_when_done:
            self._close_when_done = False
            self.close()

    def _update_buttons(self) -> None:
        running, done = self._job is not None, self.result is not None
        self.options.setEnabled(not running and not done)
        self.start_button.setVisible(not done)
        ready = self.plan is not None and self.plan.ok
        self.start_button.setEnabled(not running and ready)
        self.cancel_button.setVisible(running)
        self.cancel_button.setEnabled(running)
        self.close_button.setVisible(not running)
        self.chat_button.setVisible(done)

    def _say(self, label: QLabel, text: str, style: str) -> None:
        label.setText(text)
        label.setStyleSheet(style)
        label.setVisible(bool(text))

    def event(self, event: QEvent) -> bool:
        handled = super().event(event)
        if event.type() == QEvent.Type.LayoutRequest and self.isVisible():
            self._fit_height()
        return handled

    def _fit_height(self) -> None:
        """Grow to show what has just appeared (the chosen text's path, the progress, the outcome): a
        window keeps its height when word-wrapped labels need more lines, and the rows above them would
        be squeezed over each other."""
        needed = self.heightForWidth(self.width())
        if needed > self.height():
            self.resize(self.width(), needed)

    # -- closing -------------------------------------------------------------------------------
    def _chat(self) -> None:
        if self.result is not None:
            self.chat_requested.emit(self.result.path)
        self.close()

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 (Qt naming)
        """While the job runs, closing asks to cancel it; the dialog closes once the worker has ended."""
        if self._job is None:
            super().closeEvent(event)
            return
        event.ignore()
        if self._job.cancelled:
            self._close_when_done = True
            return
        answer = QMessageBox.question(self, "Cancel the job?",
                                      "The job is still running. Cancel it? Nothing half-made is kept.")  # fmt: skip
        if answer == QMessageBox.StandardButton.Yes:
            self._close_when_done = True
            self.cancel()

    def reject(self) -> None:
        """Esc: the same as closing (it asks while the job runs)."""
        if self._job is not None:
            self.close()
        else:
            super().reject()

    @classmethod
    def busy_jobs(cls) -> list[str]:
        return [f"Converting {d.source_name}" for d in cls.running]

    @classmethod
    def cancel_all(cls, wait_ms: int = 15_000) -> None:
        """On quit: cancel every running job and give the workers time to delete what they half-made."""
        if not cls.running:
            return
        for d in list(cls.running):
            if d._job is not None:
                d._job.cancel()
        QThreadPool.globalInstance().waitForDone(wait_ms)


def _message(exc: BaseException) -> str:
    """The error as the user reads it: the core's message, never a traceback."""
    if isinstance(exc, (QuantDeskError, OSError)):
        return str(exc) or type(exc).__name__
    return f"Something went wrong: {exc}" if str(exc) else f"Something went wrong ({type(exc).__name__})."
