"""Compare: a reference and candidates from the library, fidelity the llama-perplexity way, speed,
memory, plots, and the report to export."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.compare import CompareProgress, Comparison, run_comparison
from desktop_app.core.compare.report import to_html, to_json
from desktop_app.core.compare.runner import REFERENCE_GRADE
from desktop_app.core.kinds import ModelKind
from desktop_app.core.memory import Machine
from desktop_app.core.paths import write_text_atomic
from desktop_app.core.units import format_bytes
from desktop_app.ui import work
from desktop_app.ui.context import AppContext
from desktop_app.ui.pages.compare_answers import SideBySideTab
from desktop_app.ui.pages.compare_fidelity import FidelityTab
from desktop_app.ui.pages.compare_tasks import TasksTab
from desktop_app.ui.widgets import PageHeader

DEFAULT_MAKE = ("F16", "Q8_0", "Q4_K_M")


def make_quants(source: str, quants: list[str], folder: str):
    """Yield each written path; F16 first (from any source), the others from the F16 when there is one."""
    from desktop_app.core.quantize import quantize

    Path(folder).mkdir(parents=True, exist_ok=True)
    from desktop_app.core.gguf.quant_names import strip_quant

    stem = strip_quant(Path(source).stem)  # SmolLM2-135M-Instruct.Q4_1 -> SmolLM2-135M-Instruct
    written, base = [], source
    for q in sorted(quants, key=lambda q: q != "F16"):
        out = Path(folder) / f"{stem}-{q}.gguf"
        quantize(base, str(out), q)
        if q == "F16":
            base = str(out)
        written.append(str(out))
        yield str(out)
    return written


class ComparePage(QWidget):
    title = "Compare"
    finished = Signal(object)  # Comparison
    made = Signal()
    progressed = Signal(object)  # CompareProgress, from the worker thread

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.comparison: Comparison | None = None
        self.text_path: str | None = None
        self._worker: work.Job | None = None
        self._make_worker: work.Job | None = None
        outer = QVBoxLayout(self)
        about = ("What does the smaller quant cost? Fidelity measured the way llama-perplexity does (KL divergence "
                 "against a reference), speed and memory.")  # fmt: skip
        outer.addWidget(PageHeader("Compare quants", about))
        outer.addLayout(self._build_pick())
        self.tabs = self._build_tabs()
        outer.addWidget(self.tabs, 1)
        outer.addLayout(self._build_export())
        self._wire()

    # -- building ------------------------------------------------------------------------------
    def _build_pick(self) -> QHBoxLayout:
        """The reference and its options on the left, the candidates to tick on the right."""
        pick = QHBoxLayout()
        left = QVBoxLayout()
        left.addWidget(QLabel("Reference (F16/BF16, or Q8_0 when F16 does not fit)"))
        self.reference = QComboBox()
        self.reference.setAccessibleName("Reference model")
        left.addWidget(self.reference)
        self.ref_warning = QLabel("")
        self.ref_warning.setWordWrap(True)
        self.ref_warning.setStyleSheet("color: #b45309;")
        left.addWidget(self.ref_warning)
        left.addLayout(self._build_options())
        left.addStretch(1)
        pick.addLayout(left, 1)
        right = QVBoxLayout()
        right.addWidget(QLabel("Candidates (tick one or more)"))
        self.candidates = QListWidget()
        self.candidates.setAccessibleName("Candidate models")
        self.candidates.setMaximumHeight(120)
        right.addWidget(self.candidates)
        pick.addLayout(right, 1)
        return pick

    def _build_options(self) -> QHBoxLayout:
        """Context, chunks, the text to score and the button that makes quants."""
        opts = QHBoxLayout()
        opts.addWidget(QLabel("Context"))
        self.n_ctx = QSpinBox()
        self.n_ctx.setRange(64, 8192)
        self.n_ctx.setSingleStep(64)
        self.n_ctx.setValue(512)
        self.n_ctx.setToolTip("Tokens per chunk; 512 is what llama.cpp's published numbers use")
        opts.addWidget(self.n_ctx)
        opts.addWidget(QLabel("Chunks"))
        self.chunks = QSpinBox()
        self.chunks.setRange(0, 10000)
        self.chunks.setSpecialValueText("all")
        self.chunks.setToolTip("Score at most this many chunks of the text (all: the whole text)")
        opts.addWidget(self.chunks)
        self.text_button = QPushButton("Text: built-in")
        self.text_button.setToolTip("The text to score: QuantDesk's own, or a file of yours")
        self.text_button.clicked.connect(self._choose_text)
        opts.addWidget(self.text_button)
        self.make_button = QPushButton("Make quants…")
        self.make_button.setToolTip("Write other quant levels of the chosen reference with llama.cpp's quantizer "
                                    "(F16 from any file; then Q8_0, Q4_K_M…), into your library")  # fmt: skip
        self.make_button.clicked.connect(self._ask_make_quants)
        opts.addWidget(self.make_button)
        opts.addStretch(1)
        return opts

    def _build_tabs(self) -> QTabWidget:
        """Fidelity and speed (whose widgets the page keeps under their own names), side by side, summaries."""
        tabs = QTabWidget()
        f = self.fidelity = FidelityTab()
        self.run_button, self.cancel_button, self.progress = f.run_button, f.cancel_button, f.progress
        self.status, self.table = f.status, f.table
        self.plot_kld, self.plot_size, self.plot_speed = f.plot_kld, f.plot_size, f.plot_speed
        self.run_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        tabs.addTab(self.fidelity, "Fidelity and speed")
        self.side_tab = SideBySideTab(self.ctx, self)
        tabs.addTab(self.side_tab, "Side by side")
        self.tasks_tab = TasksTab(self.ctx, self)
        tabs.addTab(self.tasks_tab, "Summaries (ROUGE)")
        return tabs

    def _build_export(self) -> QHBoxLayout:
        export = QHBoxLayout()
        self.export_html = QPushButton("Export report (HTML)…")
        self.export_html.clicked.connect(lambda: self._export("html"))
        self.export_json = QPushButton("Export JSON…")
        self.export_json.clicked.connect(lambda: self._export("json"))
        export.addStretch(1)
        export.addWidget(self.export_html)
        export.addWidget(self.export_json)
        return export

    def _wire(self) -> None:
        self.progressed.connect(self._on_progress)
        self.reference.currentIndexChanged.connect(self._reference_changed)
        self.candidates.itemChanged.connect(self._update_buttons)
        self.ctx.library_changed.connect(self._fill_models)
        self._fill_models()
        self._update_buttons()

    # -- choosing ------------------------------------------------------------------------------
    def _models(self):
        return [e for e in self.ctx.entries if e.info is not None and e.info.kind == ModelKind.MODEL]

    def _fill_models(self) -> None:
        ref = self.reference.currentData()
        ticked = set(self.candidate_paths())
        self.reference.blockSignals(True)
        self.reference.clear()
        self.candidates.clear()
        models = sorted(self._models(), key=lambda e: (e.info.name, -e.file_bytes))
        for e in models:
            label = f"{e.info.name} ({e.info.quant}, {format_bytes(e.file_bytes)})"
            self.reference.addItem(label, e.id)
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, e.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if e.id in ticked else Qt.CheckState.Unchecked)
            self.candidates.addItem(item)
        if ref:
            self.reference.setCurrentIndex(max(0, self.reference.findData(ref)))
        else:  # the largest reference-grade file, else the largest
            best = next((e for e in sorted(models, key=lambda e: -e.file_bytes) if e.info.quant in REFERENCE_GRADE),
                        max(models, key=lambda e: e.file_bytes, default=None))  # fmt: skip
            if best is not None:
                self.reference.setCurrentIndex(self.reference.findData(best.id))
        self.reference.blockSignals(False)
        self._reference_changed()

    def set_selection(self, reference: str, candidates: list[str]) -> None:
        self.reference.setCurrentIndex(self.reference.findData(reference))
        for i in range(self.candidates.count()):
            item = self.candidates.item(i)
            checked = item.data(Qt.ItemDataRole.UserRole) in candidates
            item.setCheckState(Qt.CheckState.Checked if checked else Qt.CheckState.Unchecked)

    def candidate_paths(self) -> list[str]:
        return [self.candidates.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.candidates.count())
                if self.candidates.item(i).checkState() == Qt.CheckState.Checked]  # fmt: skip

    def _reference_changed(self, *_args) -> None:
        entry = self.ctx.find_entry(self.reference.currentData() or "")
        quant = entry.info.quant if entry is not None and entry.info is not None else ""
        self.ref_warning.setText(
            f"This reference is itself quantized ({quant}): the numbers will measure distance from it, not from "
            "the original weights. Use F16/BF16 (or Q8_0 when F16 does not fit) for the truest picture."
            if quant and quant not in REFERENCE_GRADE else ""
        )  # fmt: skip
        self._update_buttons()

    # -- making quants ---------------------------------------------------------------------------
    def _ask_make_quants(self) -> None:
        from PySide6.QtWidgets import QInputDialog

        text, ok = QInputDialog.getText(self, "Make quants", "Quant levels to write (comma-separated):",
                                        text=", ".join(DEFAULT_MAKE))  # fmt: skip
        if ok:
            self.make_quants([q.strip().upper() for q in text.split(",") if q.strip()])

    def make_quants(self, quants: list[str]) -> None:
        """Quantize the reference into <data>/quants (added to the library's folders), in a worker."""
        source = self.reference.currentData()
        if not source or self._make_worker is not None:
            return
        folder = self.ctx.paths.data_dir / "quants"
        if self.ctx.settings.add_folder(str(folder)):
            self.ctx.save_settings()
        self.make_button.setEnabled(False)
        self.status.setText(f"Writing {', '.join(quants)} of {Path(source).name} with llama.cpp's quantizer…")

        def made(paths: list[str]) -> None:
            self.ctx.notify(f"Made {len(paths)} quant(s) in {folder}: they are in your library.")
            self.ctx.rescan()

        self._make_worker = work.start(
            self, make_quants, source, quants, str(folder), on_result=made, on_finished=self._make_finished,
            on_progress=lambda path: self.status.setText(f"Wrote {Path(path).name}"),
            on_error=lambda exc: self.ctx.notify(f"Making quants failed: {exc}", "error"),
        )  # fmt: skip

    def _make_finished(self) -> None:
        self._make_worker = None
        self.make_button.setEnabled(True)
        self.made.emit()

    def _choose_text(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Text to score", "", "Text (*.txt *.md *.raw);;All files (*)")
        if path:
            self.text_path = path
            self.text_button.setText(f"Text: {Path(path).name}")

    def _update_buttons(self, *_args) -> None:
        running = self._worker is not None
        ready = bool(self.reference.currentData()) and bool(self.candidate_paths())
        self.run_button.setEnabled(ready and not running)
        self.cancel_button.setEnabled(running)
        has = self.comparison is not None or bool(self.side_tab.export()) or bool(self.tasks_tab.export())
        self.export_html.setEnabled(has and not running)
        self.export_json.setEnabled(has and not running)

    # -- running -------------------------------------------------------------------------------
    def start(self) -> None:
        reference, candidates = self.reference.currentData(), self.candidate_paths()
        if not reference or not candidates or self._worker is not None:
            return
        self.comparison = None
        self.progress.setValue(0)
        self.status.setText("Starting: the reference goes first, then each candidate on its own (one model in "
                            "memory at a time).")  # fmt: skip
        self._worker = work.start(
            self, run_comparison, reference, candidates, text_path=self.text_path, n_ctx=self.n_ctx.value(),
            chunks=self.chunks.value() or None, progress=self.progressed.emit, cancellable=True,
            machine=Machine.from_hardware(self.ctx.hardware) if self.ctx.hardware is not None else None,
            on_result=self._done, on_error=self._failed, on_finished=self._worker_finished,
        )  # fmt: skip
        self._update_buttons()

    def cancel(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            self.status.setText("Cancelling… (what was measured is kept)")

    def busy(self) -> list[str]:
        making = ["Making quants"] if self._make_worker is not None else []
        running = ["A comparison"] if self._worker is not None else []
        return running + making + self.side_tab.busy() + self.tasks_tab.busy()

    def shutdown(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self.side_tab.shutdown()
        self.tasks_tab.shutdown()

    def _on_progress(self, p: CompareProgress) -> None:
        self.progress.setValue(int(p.fraction * 1000))
        r = p.running
        extra = f", mean KLD {r['kld_mean']:.5f}, same top {r['same_top_p'] * 100:.1f} %" if "kld_mean" in r else ""
        self.status.setText(f"{Path(p.model).name} ({p.role} {p.index + 1} of {p.n_models}): chunk {p.chunk} of "
                            f"{p.chunks}, PPL {r.get('ppl', 0):.3f}{extra}")  # fmt: skip

    def _done(self, comparison: Comparison) -> None:
        self.comparison = comparison
        self.fidelity.show_comparison(comparison)
        self.progress.setValue(1000 if not comparison.cancelled else self.progress.value())
        failed = [r for r in comparison.candidates if r.error and not r.partial]
        if comparison.cancelled:
            self.status.setText("Cancelled: the rows marked partial cover the chunks done.")
        elif failed:
            self.status.setText("Done, with problems: " + "; ".join(r.error for r in failed))
        else:
            scored = comparison.reference.stats.get("tokens_scored", 0)
            self.status.setText(f"Done: {comparison.chunks} chunks of {comparison.n_ctx} tokens, {scored:,} tokens "
                                "scored per model.")  # fmt: skip

    def _failed(self, exc: Exception) -> None:
        self.status.setText(str(exc))
        self.ctx.notify(f"The comparison could not run: {exc}", "error")

    def _worker_finished(self) -> None:
        self._worker = None
        self._update_buttons()
        if self.comparison is not None:
            self.finished.emit(self.comparison)  # after the worker is gone: the page is no longer busy

    def _export(self, kind: str) -> None:
        suffix = {"html": "HTML report (*.html)", "json": "JSON (*.json)"}[kind]
        path, _ = QFileDialog.getSaveFileName(self, "Export the comparison", f"quantdesk-comparison.{kind}", suffix)
        if path:
            self.export_to(path, kind)

    def export_to(self, path: str, kind: str) -> None:
        c = self.comparison
        extras = {**self.side_tab.export(), **self.tasks_tab.export()}
        text = to_html(c, extras) if kind == "html" else json.dumps(to_json(c, extras), indent=2)

        def write() -> str:
            write_text_atomic(path, text)  # an existing report is replaced whole, or kept on a full disk
            return path

        self.ctx.run_io(write, owner=self, on_result=lambda _p: self.ctx.notify(f"Saved {Path(path).name}."),
                        on_error=lambda exc: self.ctx.notify(f"Could not write {path}: {exc}", "error"))  # fmt: skip
