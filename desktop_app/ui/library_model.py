"""The library as a Qt table model (one row per model; unreadable files are listed apart)."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from desktop_app.core.library import LibraryEntry
from desktop_app.core.units import format_bytes, format_params

COLUMNS = ["Name", "Architecture", "Parameters", "Quant", "Size", "Context", "Source"]
ENTRY_ROLE = Qt.ItemDataRole.UserRole + 1
SORT_ROLE = Qt.ItemDataRole.UserRole + 2

Index = QModelIndex | QPersistentModelIndex


class LibraryTableModel(QAbstractTableModel):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._rows: list[LibraryEntry] = []

    def set_entries(self, entries: list[LibraryEntry]) -> None:
        self.beginResetModel()
        self._rows = [e for e in entries if e.info is not None]
        self.endResetModel()

    def entry(self, row: int) -> LibraryEntry:
        return self._rows[row]

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if (
            orientation == Qt.Orientation.Horizontal
            and role == Qt.ItemDataRole.DisplayRole
            and 0 <= section < len(COLUMNS)
        ):
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not (0 <= index.row() < len(self._rows)):
            return None
        e = self._rows[index.row()]
        i = e.info
        col = index.column()
        if role == ENTRY_ROLE:
            return e
        if role == Qt.ItemDataRole.DisplayRole:
            return [
                i.name,
                i.architecture,
                format_params(i.n_params),
                i.quant
                + (" (guessed)" if i.quant_guessed else "")
                + (f" · {i.n_shards} parts" if i.n_shards > 1 else ""),
                format_bytes(e.file_bytes),
                f"{i.context_length:,}" if i.context_length else "?",
                e.source_label,
            ][col]
        if role == SORT_ROLE:
            return [
                i.name.lower(),
                i.architecture,
                i.n_params,
                i.quant,
                e.file_bytes,
                i.context_length or 0,
                e.source_label,
            ][col]
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [e.id] if len(e.paths) == 1 else e.paths
            if i.title:
                lines.insert(0, i.title)
            lines += i.warnings
            return "\n".join(lines)
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (2, 4, 5):
            return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        return None
