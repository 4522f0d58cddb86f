"""The Chat page's left-hand panel: the saved conversations, searched, renamed, deleted, exported
and imported (every read and write on the io thread)."""

from __future__ import annotations

import json
import os
import re

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.chat.export import dumps_json, from_json, to_markdown
from desktop_app.core.chat.store import ChatStore, Conversation
from desktop_app.ui.context import AppContext


class ConversationsPanel(QWidget):
    opened = Signal(object)  # a Conversation read from the store
    imported = Signal(object)  # a Conversation read from a file (and saved)
    new_requested = Signal()
    deleted = Signal()
    list_refreshed = Signal()

    def __init__(self, ctx: AppContext, store: ChatStore, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.store = store
        self.conv: Conversation | None = None  # the one the page shows
        self._store_problem_told = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 8, 0)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search conversations")
        self.search.setClearButtonEnabled(True)
        layout.addWidget(self.search)
        self.conv_list = QListWidget()
        layout.addWidget(self.conv_list, 1)
        self.new_button = QPushButton("New")
        self.rename_button = QPushButton("Rename")
        self.delete_button = QPushButton("Delete")
        self.export_md_button = QPushButton("Export .md")
        self.export_json_button = QPushButton("Export .json")
        self.import_button = QPushButton("Import…")
        for buttons in ((self.new_button, self.rename_button, self.delete_button),
                        (self.export_md_button, self.export_json_button, self.import_button)):  # fmt: skip
            row = QHBoxLayout()
            for b in buttons:
                row.addWidget(b)
            layout.addLayout(row)
        self.new_button.clicked.connect(self.new_requested)
        self.rename_button.clicked.connect(self._rename)
        self.delete_button.clicked.connect(self._delete)
        self.export_md_button.clicked.connect(lambda: self._export("md"))
        self.export_json_button.clicked.connect(lambda: self._export("json"))
        self.import_button.clicked.connect(self._import)
        self.search.textChanged.connect(self.refresh)
        self.conv_list.currentItemChanged.connect(self._open_selected)

    def show_current(self, conv: Conversation | None) -> None:
        self.conv = conv
        if conv is None or conv.id is None:
            self.conv_list.clearSelection()
        saved = bool(conv and conv.id is not None)
        for b in (self.rename_button, self.delete_button, self.export_md_button, self.export_json_button):
            b.setEnabled(saved)

    def _says(self, what: str):
        """An error callback that tells the user ``what: the error``."""
        return lambda exc: self.ctx.notify(f"{what}: {exc}", "error")

    # -- the list ------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Reload the list (read on the io thread)."""
        self.ctx.run_io(self.store.list, self.search.text().strip(), owner=self, on_result=self._fill,
                        on_error=self._says("Could not read the conversations"))  # fmt: skip

    def _fill(self, rows) -> None:
        if self.store.problem and not self._store_problem_told:  # recovered from a damaged file, or in memory
            self._store_problem_told = True
            self.ctx.notify(self.store.problem, "warning")
        current = self.conv.id if self.conv else None
        self.conv_list.blockSignals(True)
        self.conv_list.clear()
        for cid, title, _updated in rows:
            item = QListWidgetItem(title)
            item.setData(Qt.ItemDataRole.UserRole, cid)
            self.conv_list.addItem(item)
            if cid == current:
                self.conv_list.setCurrentItem(item)
        self.conv_list.blockSignals(False)
        self.list_refreshed.emit()

    def _open_selected(self, item: QListWidgetItem | None, _prev=None) -> None:
        if item is None:
            return
        self.ctx.run_io(self.store.load, item.data(Qt.ItemDataRole.UserRole), owner=self,
                        on_result=lambda conv: conv is not None and self.opened.emit(conv),
                        on_error=self._says("Could not open the conversation"))  # fmt: skip

    # -- one conversation ----------------------------------------------------------------------
    def _rename(self) -> None:
        if self.conv is None or self.conv.id is None:
            return
        title, ok = QInputDialog.getText(self, "Rename conversation", "Title", text=self.conv.title)
        if ok and title.strip():
            self.conv.title = title.strip()
            self.ctx.run_io(self.store.rename, self.conv.id, self.conv.title, owner=self,
                            on_result=lambda _r: self.refresh())  # fmt: skip

    def _delete(self) -> None:
        if self.conv is None or self.conv.id is None:
            return
        answer = QMessageBox.question(
            self, "Delete conversation", f"Delete “{self.conv.title}”? This cannot be undone."
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.ctx.run_io(self.store.delete, self.conv.id, owner=self, on_result=lambda _r: self.refresh())
            self.deleted.emit()

    def _export(self, kind: str) -> None:
        if self.conv is None or not self.conv.messages:
            return
        safe = re.sub(r"[^\w\- ]+", "", self.conv.title).strip() or "conversation"
        path, _ = QFileDialog.getSaveFileName(self, "Export conversation", f"{safe}.{kind}")
        if path:
            self.export_to(path, kind)

    def export_to(self, path: str, kind: str) -> None:
        if self.conv is None:
            return
        text = to_markdown(self.conv) if kind == "md" else dumps_json(self.conv)

        def write() -> str:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
            return path

        self.ctx.run_io(write, owner=self, on_result=lambda where: self.ctx.notify(f"Exported to {where}"),
                        on_error=self._says("Could not export"))  # fmt: skip

    def _import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a conversation", "", "QuantDesk conversation (*.json)")
        if path:
            self.import_from(path)

    def import_from(self, path: str) -> None:
        def read() -> Conversation:
            with open(path, encoding="utf-8") as f:
                conv = from_json(json.load(f))
            self.store.save(conv)
            return conv

        self.ctx.run_io(read, owner=self, on_result=self.imported.emit,
                        on_error=lambda exc: self.ctx.notify(f"Could not import {os.path.basename(path)}: {exc}",
                                                             "error"))  # fmt: skip
