"""The Compare page's first tab: run and cancel, the progress, the table of what was measured and the plots."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QByteArray, Qt
from PySide6.QtSvgWidgets import QSvgWidget
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

from desktop_app.core.compare import Comparison
from desktop_app.core.compare.report import kld_distribution_svg, model_cells, size_vs_kld_svg, speed_svg, to_json
from desktop_app.ui.widgets import muted

COLUMNS = ["Model", "Size", "PPL", "PPL ratio", "Mean KLD", "KLD p99", "Same top", "RMS Δp", "Prompt tok/s",
           "Gen tok/s", "TTFT", "Peak RAM", "Predicted RAM", "In context"]  # fmt: skip


class FidelityTab(QWidget):
    """The widgets only: the page connects the buttons and says what to show."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        fl = QVBoxLayout(self)
        fl.setContentsMargins(0, 6, 0, 0)
        fl.addLayout(self._build_run())
        self.status = muted("Pick a reference and at least one candidate.")
        self.status.setWordWrap(True)
        fl.addWidget(self.status)
        fl.addWidget(self._build_table(), 1)
        fl.addLayout(self._build_plots())

    def _build_run(self) -> QHBoxLayout:
        run = QHBoxLayout()
        self.run_button = QPushButton("Compare")
        self.run_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        run.addWidget(self.run_button)
        run.addWidget(self.cancel_button)
        run.addWidget(self.progress, 1)
        return run

    def _build_table(self) -> QTableWidget:
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        return self.table

    def _build_plots(self) -> QHBoxLayout:
        plots = QHBoxLayout()
        self.plot_kld, self.plot_size, self.plot_speed = QSvgWidget(), QSvgWidget(), QSvgWidget()
        for w, width in ((self.plot_kld, 560), (self.plot_size, 360), (self.plot_speed, 360)):
            w.setFixedSize(int(width * 0.8), int(260 * 0.8))  # the SVGs scale; three fit a 1280-wide window
            plots.addWidget(w)
        plots.addStretch(1)
        return plots

    def show_comparison(self, c: Comparison) -> None:
        data = to_json(c)
        self.table.setRowCount(0)
        for m in data["models"]:
            row = self.table.rowCount()
            self.table.insertRow(row)
            name = Path(m["path"]).name + (" (reference)" if m["role"] == "reference" else "")
            name += " (partial)" if m["partial"] else ""
            by_column = model_cells(m)
            if m["ttft_s"] is not None:
                by_column["TTFT"] += " s"
            cells = [name, *(by_column[h] for h in COLUMNS[1:])]
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if 0 < col < len(cells) - 1:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, col, item)
        self.plot_kld.load(QByteArray(kld_distribution_svg(c).encode()))
        self.plot_size.load(QByteArray(size_vs_kld_svg(c).encode()))
        self.plot_speed.load(QByteArray(speed_svg(c).encode()))
