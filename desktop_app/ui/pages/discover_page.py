"""Discover: search the Hub, open a repo, see which quants fit this computer, download one."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.gguf.quant_names import KV_CACHE_TYPES
from desktop_app.core.hub import HubUnreachableError
from desktop_app.core.hub.quants import RepoFile, RepoQuants, repo_quants
from desktop_app.core.hub.search import search_models
from desktop_app.core.kinds import Verdict
from desktop_app.core.memory import Machine, Predictor, RunSettings
from desktop_app.core.units import format_bytes, format_params
from desktop_app.ui import work
from desktop_app.ui.context import AppContext
from desktop_app.ui.convert_dialog import ConvertDialog
from desktop_app.ui.downloads import DownloadManager
from desktop_app.ui.markdown_html import CARD, to_html
from desktop_app.ui.pages.discover_downloads import DownloadsTable
from desktop_app.ui.widgets import muted

SEARCH_DEBOUNCE_MS = 350
PAGE_SIZE = 30
PARAM_RANGES = [
    ("Any size", None, None),
    ("Under 3B", None, 3e9),
    ("3B – 9B", 3e9, 9e9),
    ("9B – 20B", 9e9, 20e9),
    ("20B – 40B", 20e9, 40e9),
    ("Over 40B", 40e9, None),
]
BADGES = {
    Verdict.FULL_GPU: ("Full GPU", "#15803d"),
    Verdict.PARTIAL_GPU: ("Partial offload", "#0e7490"),
    Verdict.CPU_ONLY: ("CPU only", "#4d7c0f"),
    Verdict.TOO_LARGE: ("Won't fit", "#b91c1c"),
}


def _repo_with_card_html(repo_id: str, machine: Machine, settings: RunSettings) -> tuple[RepoQuants, str]:
    """In the worker: the quants with their fit, and the model card already rendered."""
    rq = repo_quants(repo_id, machine, settings)
    return rq, to_html(rq.card_markdown or "*No model card.*", CARD)


class DiscoverPage(QWidget):
    title = "Discover"
    results_shown = Signal()
    repo_shown = Signal()
    chat_requested = Signal(str)  # a converted model's path, to open in Chat

    def __init__(self, ctx: AppContext, downloads: DownloadManager, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.downloads = downloads
        self.repo: RepoQuants | None = None
        self.convert_dialog: ConvertDialog | None = None
        self._wanted_repo = ""
        self.limit = PAGE_SIZE
        self._search_gen = 0
        self._offline_said = False

        outer = QVBoxLayout(self)
        outer.setContentsMargins(24, 20, 24, 12)
        outer.addLayout(self._build_search_bar())
        self.status = muted("Type to search. Results appear as you type.")
        outer.addWidget(self.status)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self._build_results())
        split.addWidget(self._build_repo())
        split.setSizes([430, 640])
        outer.addWidget(split, 3)
        dl_title = QLabel("Downloads")
        dl_title.setObjectName("cardTitle")
        outer.addWidget(dl_title)
        self.dl_table = DownloadsTable(downloads)
        outer.addWidget(self.dl_table, 1)
        self._wire()
        self._show_downloads()

    # -- building ------------------------------------------------------------------------------
    def _build_search_bar(self) -> QHBoxLayout:
        """The query and its filters: sort, GGUF only, text generation, size, author."""
        bar = QHBoxLayout()
        self.query = QLineEdit()
        self.query.setPlaceholderText("Search models on the Hugging Face Hub (e.g. llama 3.2, qwen, smollm)")
        self.query.setClearButtonEnabled(True)
        self.sort = QComboBox()
        for key, label in (("downloads", "Most downloads"), ("likes", "Most likes"), ("trending", "Trending"),
                           ("updated", "Recently updated")):  # fmt: skip
            self.sort.addItem(label, key)
        self.gguf_only = QCheckBox("GGUF only")
        self.gguf_only.setChecked(True)
        self.text_gen = QCheckBox("Text generation")
        self.size = QComboBox()
        for label, lo, hi in PARAM_RANGES:
            self.size.addItem(label, (lo, hi))
        self.author = QLineEdit()
        self.author.setPlaceholderText("Author")
        self.author.setMaximumWidth(140)
        for w in (self.query, self.sort, self.gguf_only, self.text_gen, self.size, self.author):
            bar.addWidget(w, 1 if w is self.query else 0)
        return bar

    def _build_results(self) -> QWidget:
        """The left side: the repositories found, and More results."""
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 6, 0)
        self.results = QTableWidget(0, 4)
        self.results.setHorizontalHeaderLabels(["Repository", "Size", "Downloads", "Likes"])
        self.results.verticalHeader().hide()
        self.results.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.results.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.results.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        h = self.results.horizontalHeader()
        h.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in (1, 2, 3):
            h.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        ll.addWidget(self.results, 1)
        self.more_button = QPushButton("More results")
        ll.addWidget(self.more_button)
        return left

    def _build_repo(self) -> QWidget:
        """The right side: the open repository, the fit controls, its quants and card, Download."""
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(6, 0, 0, 0)
        self.repo_title = QLabel("Pick a repository to see its quants and whether they fit.")
        self.repo_title.setObjectName("cardTitle")
        self.repo_title.setWordWrap(True)
        rl.addWidget(self.repo_title)
        self.repo_meta = muted("")
        rl.addWidget(self.repo_meta)
        rl.addLayout(self._build_fit_controls())
        self.recommend = QLabel()
        self.recommend.setWordWrap(True)
        self.recommend.setStyleSheet("font-weight: 600;")
        rl.addWidget(self.recommend)
        rl.addWidget(self._build_repo_tabs(), 1)
        drow = QHBoxLayout()
        self.download_button = QPushButton("Download selected quant")
        self.download_button.setEnabled(False)
        drow.addStretch(1)
        drow.addWidget(self.download_button)
        rl.addLayout(drow)
        return right

    def _build_fit_controls(self) -> QHBoxLayout:
        ctl = QHBoxLayout()
        ctl.addWidget(QLabel("Context"))
        self.ctx_slider = QSlider(Qt.Orientation.Horizontal)
        self.ctx_slider.setRange(2, 128)  # × 1024 tokens
        self.ctx_slider.setValue(4)
        self.ctx_label = QLabel("4k")
        self.kv_combo = QComboBox()
        self.kv_combo.addItems(list(KV_CACHE_TYPES))
        ctl.addWidget(self.ctx_slider, 1)
        ctl.addWidget(self.ctx_label)
        ctl.addWidget(QLabel("KV cache"))
        ctl.addWidget(self.kv_combo)
        return ctl

    def _build_repo_tabs(self) -> QTabWidget:
        tabs = QTabWidget()
        self.quants = QTableWidget(0, 6)
        self.quants.setHorizontalHeaderLabels(["Quant", "Bits/weight", "Size", "RAM", "GPU memory", "On this computer"])
        self.quants.verticalHeader().hide()
        self.quants.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.quants.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.quants.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        qh = self.quants.horizontalHeader()
        qh.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        qh.setStretchLastSection(True)
        tabs.addTab(self.quants, "Quants")
        self.card = QTextBrowser()
        self.card.setOpenExternalLinks(True)
        tabs.addTab(self.card, "Model card")
        return tabs

    def _wire(self) -> None:
        """The search debounce, the controls' signals, and the throttled repaint of the downloads."""
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(SEARCH_DEBOUNCE_MS)
        self._debounce.timeout.connect(self.search)
        self.query.textChanged.connect(self._schedule)
        self.author.textChanged.connect(self._schedule)
        for w in (self.sort, self.size):
            w.currentIndexChanged.connect(self._schedule)
        for w in (self.gguf_only, self.text_gen):
            w.toggled.connect(self._schedule)
        self.more_button.clicked.connect(self._more)
        self.results.itemSelectionChanged.connect(self._open_selected)
        self.ctx_slider.valueChanged.connect(self._refit)
        self.kv_combo.currentIndexChanged.connect(self._refit)
        self.quants.itemSelectionChanged.connect(self._quant_selected)
        self.download_button.clicked.connect(self._download)
        self._dl_timer = QTimer(self)  # progress arrives often: repaint the table at most 5 times a second
        self._dl_timer.setSingleShot(True)
        self._dl_timer.setInterval(200)
        self._dl_timer.timeout.connect(self._show_downloads)
        self.downloads.changed.connect(lambda _t: self._dl_timer.start() if not self._dl_timer.isActive() else None)

    # -- search --------------------------------------------------------------------------------
    def _schedule(self, *_args) -> None:
        self.limit = PAGE_SIZE
        self._debounce.start()

    def _more(self) -> None:
        self.limit += PAGE_SIZE
        self.search()

    def search(self) -> None:
        """Search in a worker; a newer search makes older answers irrelevant."""
        self._search_gen += 1
        gen = self._search_gen
        lo, hi = self.size.currentData()
        self.status.setText("Searching…")
        work.start(
            self, search_models, self.query.text().strip(), sort=self.sort.currentData(),
            gguf_only=self.gguf_only.isChecked(), text_generation=self.text_gen.isChecked(),
            author=self.author.text().strip() or None, min_params=lo, max_params=hi, limit=self.limit,
            on_result=lambda results: self._show_results(gen, results), on_error=lambda exc: self._hub_failed(gen, exc),
        )  # fmt: skip

    def _show_results(self, gen: int, results) -> None:
        if gen != self._search_gen:
            return
        self.results.setRowCount(len(results))
        for r, res in enumerate(results):
            cells = [res.repo_id + ("  (gated)" if res.gated else ""), format_params(res.params) if res.params else "?",
                     f"{res.downloads:,}", f"{res.likes:,}"]  # fmt: skip
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, res.repo_id)
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.results.setItem(r, c, item)
        n = len(results)
        self.status.setText(f"{n} repositor{'y' if n == 1 else 'ies'}" if results else "No repositories match.")
        self.more_button.setEnabled(len(results) >= self.limit)
        self._offline_said = False
        self.results_shown.emit()

    def _hub_failed(self, gen: int | None, exc: Exception) -> None:
        if gen is not None and gen != self._search_gen:
            return
        if isinstance(exc, HubUnreachableError):
            self.status.setText("Offline: the Hugging Face Hub cannot be reached. Your local models still work.")
            if not self._offline_said:  # say it once, plainly
                self._offline_said = True
                self.ctx.notify(str(exc), "warning")
        else:
            self.status.setText(str(exc))
            self.ctx.notify(str(exc), "error")
        self.results_shown.emit()

    # -- a repository --------------------------------------------------------------------------
    def _settings(self) -> RunSettings:
        return RunSettings(n_ctx=self.ctx_slider.value() * 1024, kv_type=self.kv_combo.currentText())

    def _machine(self) -> Machine | None:
        return Machine.from_hardware(self.ctx.hardware) if self.ctx.hardware is not None else None

    def _open_selected(self) -> None:
        rows = self.results.selectionModel().selectedRows()
        if rows:
            self.open_repo(self.results.item(rows[0].row(), 0).data(Qt.ItemDataRole.UserRole))

    def open_repo(self, repo_id: str) -> None:
        machine = self._machine()
        if machine is None:
            self.repo_title.setText("Waiting for the hardware probe…")
            return
        self.repo_title.setText(repo_id)
        self.repo_meta.setText("Reading the quants' headers (a few hundred kB each)…")
        self.quants.setRowCount(0)
        self.card.setHtml("")
        self.recommend.setText("")
        self._wanted_repo = repo_id
        work.start(self, _repo_with_card_html, repo_id, machine, self._settings(), on_result=self._show_repo,
                   on_error=lambda exc: (self.repo_meta.setText(str(exc)), self._hub_failed(None, exc)))  # fmt: skip

    def _show_repo(self, result: tuple[RepoQuants, str]) -> None:
        rq, card_html = result
        if rq.repo_id != self._wanted_repo:  # the user has moved on to another repo meanwhile
            return
        self.repo = rq
        meta = []
        if rq.license:
            meta.append(f"License: {rq.license}")
        if rq.gated:
            meta.append("Gated: accept the licence on the Hub and save a token in Settings")
        meta += rq.notes
        self.repo_meta.setText(" · ".join(meta))
        self.card.setHtml(card_html)
        self._fill_quants()
        self.repo_shown.emit()

    def _refit(self, *_args) -> None:
        self.ctx_label.setText(f"{self.ctx_slider.value()}k")
        if self.repo is None or self._machine() is None:
            return
        machine, settings = self._machine(), self._settings()
        for f in self.repo.files:
            if f.shape is not None:
                f.prediction = Predictor(f.shape, machine).predict(settings, with_max_ctx=False)
        self._fill_quants()

    def _fill_quants(self) -> None:
        rq = self.repo
        best, why = rq.recommended()
        self.recommend.setText(("★ " if best else "") + why)
        self.quants.setRowCount(len(rq.files))
        for r, f in enumerate(rq.files):
            p = f.prediction
            badge, color = BADGES.get(p.verdict, ("?", "#666")) if p else (("projector" if f.mmproj else "?"), "#666")
            name = f.quant + (" ★" if f is best else "") + (f" ({f.shards} parts)" if f.shards > 1 else "")
            cells = [
                name,
                f"{f.bits_per_weight:.2f}" if f.bits_per_weight else "",
                format_bytes(f.size_bytes),
                format_bytes(p.ram.needed_bytes) if p else "",
                format_bytes(p.vram.needed_bytes) if p and p.vram.needed_bytes else "—",
                badge if not f.error else f"unreadable: {f.error[:60]}",
            ]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, r)
                if c == 5:
                    item.setForeground(QColor(color))
                self.quants.setItem(r, c, item)
        self._quant_selected()

    def _is_conversion(self, f: RepoFile | None) -> bool:
        """A "(convert) …" row of a safetensors-only repo: made by converting, not downloaded as is."""
        return f is not None and self.repo is not None and self.repo.safetensors_only and not f.parts

    def _quant_selected(self) -> None:
        rows = self.quants.selectionModel().selectedRows()
        f = self.repo.files[rows[0].row()] if rows and self.repo else None
        convert = self._is_conversion(f)
        self.download_button.setText("Download and convert…" if convert else "Download selected quant")
        self.download_button.setEnabled(bool(f and (f.parts or convert)))

    def _download(self) -> None:
        rows = self.quants.selectionModel().selectedRows()
        if not rows or self.repo is None:
            return
        f = self.repo.files[rows[0].row()]
        if f.prediction is not None and f.prediction.verdict == Verdict.TOO_LARGE:
            self.ctx.notify(f"{f.quant} will not fit this computer at this context; downloading anyway.", "warning")
        if self._is_conversion(f):
            self.open_convert(self.repo.repo_id, None if f.quant.upper() in ("F16", "BF16", "F32") else f.quant)
        else:
            self.downloads.add(self.repo.repo_id, f.parts, f.quant, f.size_bytes)

    def open_convert(self, repo_id: str, quant: str | None) -> ConvertDialog:
        """The conversion dialog for a safetensors repo, with the row's quant chosen (F16: none)."""
        self.convert_dialog = ConvertDialog(self.ctx, repo_id, quant=quant, parent=self)
        self.convert_dialog.chat_requested.connect(self.chat_requested)
        self.convert_dialog.show()
        return self.convert_dialog

    # -- downloads -----------------------------------------------------------------------------
    def _show_downloads(self, *_args) -> None:
        self.dl_table.refresh()
