"""The Compare page's summaries tab: the reference and the candidates summarize, scored by ROUGE."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.compare.tasks import TaskResult, summarize_and_score
from desktop_app.ui import work
from desktop_app.ui.context import AppContext
from desktop_app.ui.pages.compare_answers import _JobOwner
from desktop_app.ui.widgets import muted


class TasksTab(_JobOwner, QWidget):
    scored = Signal()
    _progress = Signal(str, int, int)

    def __init__(self, ctx: AppContext, page, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx, self.page = ctx, page
        self.results: list[TaskResult] = []
        self._done_models: list[str] = []  # the models that have written all their summaries, in this run
        self.job: work.Job | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 6, 0, 0)
        about = ("The reference and the ticked candidates each summarize six short passages; ROUGE F1 against the "
                 "hand-written summaries (quality) and against the reference's (drift).")  # fmt: skip
        lay.addWidget(muted(about))
        row = QHBoxLayout()
        self.run = QPushButton("Summarize and score")
        self.run.clicked.connect(self.start)
        self.cancel = QPushButton("Cancel")
        self.cancel.clicked.connect(self.stop)
        self.progress = QProgressBar()
        self.status = muted("")
        for w in (self.run, self.cancel, self.progress):
            row.addWidget(w)
        row.addWidget(self.status, 1)
        lay.addLayout(row)
        cols = ["Model", "R-1 vs written", "R-2 vs written", "R-L vs written", "R-1 vs reference",
                "R-2 vs reference", "R-L vs reference"]  # fmt: skip
        self.table = QTableWidget(0, len(cols))
        self.table.setHorizontalHeaderLabels(cols)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        lay.addWidget(self.table, 1)
        self._progress.connect(self._on_progress)
        self._update()

    def _update(self) -> None:
        running = self.running
        self.run.setEnabled(not running)
        self.cancel.setEnabled(running)

    def start(self) -> None:
        reference, candidates = self.page.reference.currentData(), self.page.candidate_paths()
        if not reference or not candidates:
            self.status.setText("Pick a reference and tick at least one candidate above.")
            return
        self.progress.setRange(0, 6 * (1 + len(candidates)))
        self.progress.setValue(0)
        self._done_models = []
        self.job = work.start(self, summarize_and_score, reference, candidates, progress=self._progress.emit,
                              cancellable=True, on_result=self._done, on_error=self._failed,
                              on_finished=self._finished)  # fmt: skip
        self._update()

    def _on_progress(self, model: str, i: int, n: int) -> None:
        if i == n:
            self._done_models.append(model)
        self.progress.setValue(len(self._done_models) * n + (i if i < n else 0))
        self.status.setText(f"{Path(model).name}: {i} of {n} summaries")

    def _done(self, results: list[TaskResult]) -> None:
        self.results = results
        self.table.setRowCount(0)
        for r in results:
            row = self.table.rowCount()
            self.table.insertRow(row)
            cells = [f"{Path(r.model).name} ({r.role})"]
            for d in (r.vs_written, r.vs_reference):
                cells += [f"{d[k]:.3f}" if d else "—" for k in ("rouge1", "rouge2", "rougeL")]
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(text))
        self.status.setText("Done.")

    def _failed(self, exc: Exception) -> None:
        self.status.setText(str(exc))

    def _finished(self) -> None:
        self._update()
        self.page._update_buttons()
        self.scored.emit()

    def busy(self) -> list[str]:
        return ["Summaries"] if self.running else []

    def shutdown(self) -> None:
        self.stop()

    def export(self) -> dict:
        if not self.results:
            return {}
        return {"summaries": [{"model": r.model, "role": r.role, "vs_written": r.vs_written,
                               "vs_reference": r.vs_reference, "summaries": r.summaries}
                              for r in self.results]}  # fmt: skip
