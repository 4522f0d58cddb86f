"""Models: the local library of GGUF files, with add, open, drop, remove and reveal."""

from __future__ import annotations

import os

from PySide6.QtCore import QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QPushButton,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.library import LibraryEntry, ScanResult
from desktop_app.ui.context import AppContext
from desktop_app.ui.convert_dialog import ConvertDialog
from desktop_app.ui.desktop import reveal_in_file_manager
from desktop_app.ui.library_model import ENTRY_ROLE, SORT_ROLE, LibraryTableModel
from desktop_app.ui.widgets import PageHeader, muted


class ModelsPage(QWidget):
    title = "Models"
    open_details = Signal(object)  # LibraryEntry
    chat_requested = Signal(str)  # a converted model's path, to open in Chat

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.convert_dialog: ConvertDialog | None = None
        self.setAcceptDrops(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.addWidget(
            PageHeader(
                "Models",
                "The GGUF models on this computer: your folders, the Hugging Face cache and the starter "
                "model. Drop .gguf files or folders here to add them.",
            )
        )
        layout.addLayout(self._build_button_bar())
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter by name, architecture, quant or folder")
        self.filter.setClearButtonEnabled(True)
        layout.addWidget(self.filter)
        layout.addWidget(self._build_table(), 3)
        self._build_status(layout)
        layout.addWidget(self._build_problems(), 1)
        self._wire()
        self.refresh()

    def _build_button_bar(self) -> QHBoxLayout:
        """Add/open/rescan on the left, actions on the selected model on the right."""
        bar = QHBoxLayout()
        self.add_folder_button = QPushButton("Add folder…")
        self.add_folder_button.setToolTip("Search a folder (and its subfolders) for GGUF models")
        self.open_file_button = QPushButton("Open file…")
        self.open_file_button.setToolTip("Add one or more .gguf files")
        self.rescan_button = QPushButton("Rescan")
        self.details_button = QPushButton("Details")
        self.reveal_button = QPushButton("Show in folder")
        self.remove_button = QPushButton("Remove from library")
        self.remove_button.setToolTip("Hide this model from the library; the file stays on disk")
        for b in (self.add_folder_button, self.open_file_button, self.rescan_button):
            bar.addWidget(b)
        bar.addStretch(1)
        for b in (self._build_convert_button(), self.details_button, self.reveal_button, self.remove_button):
            bar.addWidget(b)
        return bar

    def _build_convert_button(self) -> QToolButton:
        """Convert / Quantize…: the selected GGUF (or, with none, a checkpoint folder); its menu offers both."""
        self.convert_button = QToolButton()
        self.convert_button.setText("Convert / Quantize…")
        self.convert_button.setToolTip("Quantize the selected GGUF, or convert a Hugging Face checkpoint folder")
        self.convert_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        menu = QMenu(self.convert_button)
        self.quantize_action = menu.addAction("Quantize the selected model…")
        self.quantize_action.triggered.connect(self.convert_selected)
        self.convert_folder_action = menu.addAction("Convert a checkpoint folder…")
        self.convert_folder_action.triggered.connect(self.ask_convert_folder)
        self.convert_button.setMenu(menu)
        return self.convert_button

    def _build_table(self) -> QTableView:
        """The library table behind a sorting, filtering proxy."""
        self.model = LibraryTableModel(self)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setFilterKeyColumn(-1)
        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setStretchLastSection(False)
        return self.table

    def _build_status(self, layout: QVBoxLayout) -> None:
        """The empty-library message and the scan status line."""
        self.empty = QLabel(
            "No models yet. Click “Add folder…” to point QuantDesk at the folder where you keep GGUF "
            "files, or drop them here."
        )
        self.empty.setObjectName("emptyState")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        layout.addWidget(self.empty)
        self.status = muted("")
        layout.addWidget(self.status)

    def _build_problems(self) -> QGroupBox:
        """The files and folders that could not be read, and why."""
        self.problems_box = QGroupBox("Could not be read")
        pb = QVBoxLayout(self.problems_box)
        self.problems = QTableWidget(0, 2)
        self.problems.setHorizontalHeaderLabels(["File or folder", "Why"])
        self.problems.verticalHeader().hide()
        self.problems.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.problems.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.problems.setWordWrap(True)
        ph = self.problems.horizontalHeader()
        ph.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        ph.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.problems.setColumnWidth(0, 380)
        pb.addWidget(self.problems)
        return self.problems_box

    def _wire(self) -> None:
        """Connect the buttons, the table, the filter and the app context to this page."""
        self.add_folder_button.clicked.connect(self.ask_add_folder)
        self.open_file_button.clicked.connect(self.ask_open_files)
        self.rescan_button.clicked.connect(self.ctx.rescan)
        self.details_button.clicked.connect(self._details)
        self.reveal_button.clicked.connect(self._reveal)
        self.remove_button.clicked.connect(self.remove_selected)
        self.convert_button.clicked.connect(self.convert_selected)
        self.table.doubleClicked.connect(lambda _i: self._details())
        self.table.activated.connect(lambda _i: self._details())
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)
        QShortcut(QKeySequence.StandardKey.Delete, self.table, activated=self.remove_selected)

        self.ctx.library_changed.connect(self.refresh)
        self.ctx.scan_started.connect(lambda: self.status.setText("Scanning your folders…"))
        self.ctx.scan_progress.connect(self._progress)
        self.ctx.scan_finished.connect(self._scan_finished)

    # -- data ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        selected = self.selected_entry()
        self.model.set_entries(self.ctx.entries)
        has_models = self.model.rowCount() > 0
        self.table.setVisible(has_models)
        self.empty.setVisible(not has_models and not self.ctx.scanning)
        if selected is not None:
            self.select_entry(selected.id)
        elif has_models:
            self.table.selectRow(0)
        self._fill_problems()
        self._selection_changed()

    def _fill_problems(self) -> None:
        rows: list[tuple[str, str]] = [(e.id, e.error or "") for e in self.ctx.entries if e.error]
        if self.ctx.last_scan is not None:
            rows += [("Folder", p) for p in self.ctx.last_scan.folder_problems]
            rows += [("Starter model", n) for n in self.ctx.last_scan.notices]
        self.problems.setRowCount(len(rows))
        for r, (what, why) in enumerate(rows):
            item = QTableWidgetItem(os.path.basename(what) if os.sep in what else what)
            item.setToolTip(what)
            self.problems.setItem(r, 0, item)
            reason = QTableWidgetItem(why)
            reason.setToolTip(why)
            self.problems.setItem(r, 1, reason)
        self.problems.resizeRowsToContents()
        self.problems_box.setTitle(f"Could not be read ({len(rows)})")
        self.problems_box.setVisible(bool(rows))

    def _progress(self, done: int, total: int) -> None:
        self.status.setText(f"Scanning… {done} of {total} models")

    def _scan_finished(self, result: ScanResult) -> None:
        n = len(result.models)
        parts = f"{n} model{'s' if n != 1 else ''}"
        if result.problems:
            parts += f", {len(result.problems)} unreadable file{'s' if len(result.problems) != 1 else ''}"
        self.status.setText(f"{parts} · scanned in {result.elapsed_s:.2f} s")
        self.empty.setVisible(n == 0)
        self._fill_problems()

    # -- selection -----------------------------------------------------------------------------
    def selected_entry(self) -> LibraryEntry | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        return rows[0].data(ENTRY_ROLE) if rows else None

    def select_entry(self, entry_id: str) -> bool:
        for r in range(self.proxy.rowCount()):
            idx = self.proxy.index(r, 0)
            if idx.data(ENTRY_ROLE).id == entry_id:
                self.table.selectRow(r)
                return True
        return False

    def _selection_changed(self, *_args) -> None:
        entry = self.selected_entry()
        for b in (self.details_button, self.reveal_button, self.remove_button, self.quantize_action):
            b.setEnabled(entry is not None)
        if entry is not None:
            self.remove_button.setEnabled(entry.source != "starter")
            self.ctx.select_model(entry)

    # -- actions -------------------------------------------------------------------------------
    def ask_add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder with GGUF models")
        if folder:
            self.add_paths([folder])

    def ask_open_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open GGUF models", "", "GGUF models (*.gguf);;All files (*)")
        if files:
            self.add_paths(files)

    def add_paths(self, paths: list[str]) -> None:
        """Folders become library folders, .gguf files are added one by one; anything else is refused."""
        changed = False
        refused = []
        for p in paths:
            if os.path.isdir(p):
                changed |= self.ctx.settings.add_folder(p)
            elif p.lower().endswith(".gguf"):
                changed |= self.ctx.settings.add_file(p)
            else:
                refused.append(os.path.basename(p))
        if refused:
            self.ctx.notify(
                f"Not added: {', '.join(refused)} — only .gguf model files and folders can be added. "
                "Other formats (safetensors, .bin) must be converted to GGUF first: use “Convert / Quantize…” on "
                "the checkpoint's folder.",
                "warning",
            )
        if changed:
            self.ctx.save_settings(rescan=True)

    def convert_selected(self) -> None:
        """The selected GGUF in the conversion dialog (it says when the file is already quantized);
        with nothing selected, a checkpoint folder instead."""
        entry = self.selected_entry()
        if entry is None:
            self.ask_convert_folder()
        else:
            self.open_convert(entry.id)

    def ask_convert_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Convert a checkpoint (the folder with config.json)")
        if folder:
            self.open_convert(folder)

    def open_convert(self, source: str) -> ConvertDialog:
        self.convert_dialog = ConvertDialog(self.ctx, source, parent=self)
        self.convert_dialog.chat_requested.connect(self.chat_requested)
        self.convert_dialog.show()
        return self.convert_dialog

    def remove_selected(self) -> None:
        entry = self.selected_entry()
        if entry is None:
            return
        if entry.source == "starter":
            self.ctx.notify("The starter model can be hidden in Settings (“Show the starter model”).")
            return
        self.ctx.settings.remove_model(entry.paths)
        self.ctx.entries = [e for e in self.ctx.entries if e.id != entry.id]
        self.ctx.library_changed.emit()
        self.ctx.save_settings()
        self.ctx.notify(f"Removed {entry.name} from the library. The file is still on disk: {entry.id}")

    def _details(self) -> None:
        entry = self.selected_entry()
        if entry is not None:
            self.open_details.emit(entry)

    def _reveal(self) -> None:
        entry = self.selected_entry()
        if entry is not None and not reveal_in_file_manager(entry.id):
            self.ctx.notify(f"Could not open a file manager. The file is at {entry.id}", "warning")

    # -- drag and drop -------------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.add_paths(paths)
            event.acceptProposedAction()
