"""Discover's downloads table: each download's progress, speed and time left, with its buttons."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from desktop_app.core.units import format_bytes
from desktop_app.ui.downloads import DownloadManager, DownloadTask


class DownloadsTable(QTableWidget):
    """The downloads of a DownloadManager, one a row; refresh() repaints them."""

    def __init__(self, downloads: DownloadManager, parent: QWidget | None = None) -> None:
        super().__init__(0, 5, parent)
        self.downloads = downloads
        self.setHorizontalHeaderLabels(["Model", "Progress", "Speed", "Time left", ""])
        self.verticalHeader().hide()
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        dh = self.horizontalHeader()
        dh.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        dh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.setMaximumHeight(150)

    def refresh(self) -> None:
        tasks = [t for t in self.downloads.tasks if t.state != "cancelled"]
        self.setRowCount(len(tasks))
        for r, t in enumerate(tasks):
            self.setItem(r, 0, QTableWidgetItem(f"{t.repo_id} — {t.quant}"))
            bar = QProgressBar()
            bar.setRange(0, 1000)
            bar.setValue(int(t.bytes_done / t.size_bytes * 1000) if t.size_bytes else 0)
            label = {"downloading": t.phase or "downloading", "failed": "failed: " + t.error[:80]}.get(t.state, t.state)
            bar.setFormat(f"{label} — {format_bytes(t.bytes_done)} of {format_bytes(t.size_bytes)}")
            self.setCellWidget(r, 1, bar)
            self.setItem(r, 2, QTableWidgetItem(f"{t.speed_bps / 1e6:.1f} MB/s" if t.state == "downloading" else ""))
            eta = f"{t.eta_s:.0f} s" if t.state == "downloading" and t.eta_s else ""
            self.setItem(r, 3, QTableWidgetItem(eta))
            self.setCellWidget(r, 4, self._actions(t))

    def _actions(self, t: DownloadTask) -> QWidget:
        w = QWidget()
        lay = QHBoxLayout(w)
        lay.setContentsMargins(2, 0, 2, 0)
        if t.state in ("downloading", "queued"):
            b = QPushButton("Pause")
            b.clicked.connect(lambda: self.downloads.pause(t))
            lay.addWidget(b)
        if t.state in ("paused", "failed"):
            b = QPushButton("Resume" if t.state == "paused" else "Retry")
            b.clicked.connect(lambda: self.downloads.resume(t))
            lay.addWidget(b)
        if t.state not in ("done", "cancelled"):
            b = QPushButton("Cancel")
            b.clicked.connect(lambda: self.downloads.cancel(t))
            lay.addWidget(b)
        return w
