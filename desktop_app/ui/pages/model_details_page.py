"""Model details: the GGUF metadata and tensor-type mix of one model."""

from __future__ import annotations

from PySide6.QtCore import QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QFontDatabase, QGuiApplication, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.gguf import ModelInfo, read_model_headers
from desktop_app.core.library import LibraryEntry
from desktop_app.core.memory import Machine, model_shape
from desktop_app.core.memory.history import MeasurementStore, measure_and_record, model_fingerprint
from desktop_app.core.units import format_bytes, format_params
from desktop_app.ui import work
from desktop_app.ui.context import AppContext
from desktop_app.ui.desktop import reveal_in_file_manager
from desktop_app.ui.fit_panel import FitPanel
from desktop_app.ui.widgets import Card, KeyValueGrid, PageHeader, muted


def _heads(v: int | list[int] | None) -> str:
    if v is None:
        return "?"
    if isinstance(v, list):
        return f"per layer: {min(v)}–{max(v)}"
    return str(v)


def architecture_rows(i: ModelInfo) -> list[tuple[str, str]]:
    """The facts a person compares between models, in plain words."""
    rows = [
        ("Architecture", i.architecture),
        ("Parameters", f"{format_params(i.n_params)} ({i.n_params:,})"),
        (
            "Quantization",
            f"{i.quant}{' (guessed from tensors)' if i.quant_guessed else ''} — "
            f"{i.bits_per_weight:.2f} bits per weight on average",
        ),
        ("Layers", str(i.n_layers or "?")),
        ("Attention heads", _heads(i.n_heads)),
    ]
    kv = _heads(i.n_kv_heads)
    if isinstance(i.n_heads, int) and isinstance(i.n_kv_heads, int) and i.n_kv_heads and i.n_heads != i.n_kv_heads:
        kv += f" (grouped-query attention, {i.n_heads // i.n_kv_heads} query heads per KV head)"
    rows.append(("KV heads", kv))
    rows.append(("Embedding size", str(i.n_embd or "?")))
    if i.n_ff:
        rows.append(("Feed-forward size", _heads(i.n_ff)))
    vocab = f"{i.vocab_size:,}" if i.vocab_size else "?"
    if i.tokenizer:
        vocab += f" tokens ({i.tokenizer} tokenizer)"
    rows.append(("Vocabulary", vocab))
    rows.append(("Context length", f"{i.context_length:,} tokens (trained maximum)" if i.context_length else "?"))
    if i.rope:
        parts = []
        if "freq_base" in i.rope:
            parts.append(f"base {i.rope['freq_base']:g}")
        if "dimension_count" in i.rope:
            parts.append(f"{i.rope['dimension_count']} dims")
        if "scaling.type" in i.rope and i.rope["scaling.type"] != "none":
            parts.append(f"scaling {i.rope['scaling.type']} ×{i.rope.get('scaling.factor', '?')}")
        if "scaling.original_context_length" in i.rope:
            parts.append(f"from {i.rope['scaling.original_context_length']:,}")
        rows.append(("RoPE", ", ".join(parts)))
    if i.n_experts:
        rows.append(
            ("Experts", f"{i.n_experts} experts, {i.n_experts_used or '?'} used per token (mixture of experts)")
        )
    if i.sliding_window:
        rows.append(("Sliding window", f"{i.sliding_window:,} tokens"))
    rows.append(("File", f"GGUF v{i.gguf_version}, {i.n_shards} part{'s' if i.n_shards > 1 else ''}"))
    return rows


def _read_for_fit(path: str):
    """Worker body: the model's shape, its fingerprint and the last measurement of it."""
    shape = model_shape(read_model_headers(path))
    fingerprint = model_fingerprint(path)
    return shape, fingerprint, MeasurementStore().last_for(fingerprint)


class ModelDetailsPage(QWidget):
    title = "Model details"
    go_to_models = Signal()

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        self.entry: LibraryEntry | None = None
        self._shape_for: str | None = None  # entry id whose header the fit panel shows
        self._shape = None
        self._fingerprint = ""
        self._measuring = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 20, 24, 20)
        layout.addLayout(self._build_header())
        layout.addWidget(self._build_empty_state(), 1)
        layout.addWidget(self._build_content(), 1)
        self._wire()
        self._fill_picker()
        self.show_entry(ctx.selected)

    def _build_header(self) -> QHBoxLayout:
        """The page header with the model picker beside it."""
        top = QHBoxLayout()
        self.header = PageHeader("Model details", "Pick a model to see what is inside its GGUF file.")
        top.addWidget(self.header, 1)
        self.picker = QComboBox()
        self.picker.setMinimumWidth(320)
        self.picker.setToolTip("Which model to show")
        top.addWidget(self.picker)
        return top

    def _build_empty_state(self) -> QWidget:
        """What the page shows while no model is selected."""
        self.empty = QWidget()
        el = QVBoxLayout(self.empty)
        msg = QLabel("No model selected. Pick one on the Models page.")
        msg.setObjectName("emptyState")
        el.addWidget(msg)
        self.models_button = QPushButton("Go to Models")
        self.models_button.clicked.connect(self.go_to_models)
        el.addWidget(self.models_button, 0, Qt.AlignmentFlag.AlignLeft)
        el.addStretch(1)
        return self.empty

    def _build_content(self) -> QWidget:
        """The selected model: its path, warnings and the tabs."""
        self.content = QWidget()
        cl = QVBoxLayout(self.content)
        cl.setContentsMargins(0, 0, 0, 0)
        info_bar = QHBoxLayout()
        self.path_label = muted("")
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        info_bar.addWidget(self.path_label, 1)
        self.copy_path_button = QPushButton("Copy path")
        self.reveal_button = QPushButton("Show in folder")
        info_bar.addWidget(self.copy_path_button)
        info_bar.addWidget(self.reveal_button)
        cl.addLayout(info_bar)
        self.warning = QLabel()
        self.warning.setObjectName("badgeWarn")
        self.warning.setWordWrap(True)
        cl.addWidget(self.warning)
        cl.addWidget(self._build_tabs(self._build_arch_split()), 1)
        return self.content

    def _build_arch_split(self) -> QSplitter:
        """The architecture card beside the tensor-type mix."""
        split = QSplitter(Qt.Orientation.Horizontal)
        self.arch_card = Card("Architecture")
        self.arch_grid = self.arch_card.add(KeyValueGrid())
        self.arch_card.body.addStretch(1)
        split.addWidget(self.arch_card)

        self.mix_card = Card("Tensor types")
        self.mix_summary = self.mix_card.add(QLabel())
        self.mix_summary.setWordWrap(True)
        self.mix_table = QTableWidget(0, 6)
        self.mix_table.setHorizontalHeaderLabels(["Type", "Tensors", "Weights", "Bytes", "Share", "Bits/weight"])
        self.mix_table.verticalHeader().hide()
        self.mix_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.mix_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.mix_card.add(self.mix_table)
        self.mix_card.add(
            muted(
                "Quantized files mix types: embeddings and output often stay at higher precision, "
                "norms stay F32. Bits per weight = bytes × 8 ÷ weights."
            )
        )
        split.addWidget(self.mix_card)
        split.setSizes([520, 560])
        return split

    def _build_tabs(self, split: QSplitter) -> QTabWidget:
        """Fit panel, architecture and tensors, chat template and all metadata."""
        self.tabs = QTabWidget()
        self.fit_panel = FitPanel()
        self.tabs.addTab(self.fit_panel, "Will it fit?")
        self.tabs.addTab(split, "Architecture and tensors")
        self.template = QPlainTextEdit()
        self.template.setReadOnly(True)
        self.template.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.tabs.addTab(self.template, "Chat template")
        self.tabs.addTab(self._build_metadata_tab(), "All metadata")
        return self.tabs

    def _build_metadata_tab(self) -> QWidget:
        """A filterable table of every metadata key in the file."""
        meta = QWidget()
        ml = QVBoxLayout(meta)
        self.meta_filter = QLineEdit()
        self.meta_filter.setPlaceholderText("Filter metadata keys and values")
        self.meta_filter.setClearButtonEnabled(True)
        ml.addWidget(self.meta_filter)
        self.meta_model = QStandardItemModel(0, 3, self)
        self.meta_model.setHorizontalHeaderLabels(["Key", "Type", "Value"])
        self.meta_proxy = QSortFilterProxyModel(self)
        self.meta_proxy.setSourceModel(self.meta_model)
        self.meta_proxy.setFilterKeyColumn(-1)
        self.meta_proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.meta_view = QTableView()
        self.meta_view.setModel(self.meta_proxy)
        self.meta_view.verticalHeader().hide()
        self.meta_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.meta_view.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.meta_view.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.meta_view.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        ml.addWidget(self.meta_view)
        return meta

    def _wire(self) -> None:
        """Connect the widgets and the app context to this page."""
        self.meta_filter.textChanged.connect(self.meta_proxy.setFilterFixedString)
        self.copy_path_button.clicked.connect(self._copy_path)
        self.reveal_button.clicked.connect(self._reveal)
        self.picker.activated.connect(self._picked)
        self.ctx.library_changed.connect(self._fill_picker)
        self.ctx.selected_model_changed.connect(self.show_entry)
        self.ctx.hardware_changed.connect(lambda _hw: self._apply_fit())
        self.fit_panel.measure_requested.connect(self._measure)

    def _fill_picker(self) -> None:
        self.picker.blockSignals(True)
        self.picker.clear()
        for e in self.ctx.entries:
            if e.info is not None:
                self.picker.addItem(f"{e.info.name}  ({format_bytes(e.file_bytes)})", e.id)
        self.picker.setEnabled(self.picker.count() > 0)
        if self.entry is not None:
            self.picker.setCurrentIndex(max(0, self.picker.findData(self.entry.id)))
        self.picker.blockSignals(False)

    def _picked(self, index: int) -> None:
        entry = self.ctx.find_entry(self.picker.itemData(index))
        if entry is not None:
            self.ctx.select_model(entry)

    def show_entry(self, entry: LibraryEntry | None) -> None:
        self.entry = entry if entry is not None and entry.info is not None else None
        self.empty.setVisible(self.entry is None)
        self.content.setVisible(self.entry is not None)
        if self.entry is None:
            self.header.title.setText("Model details")
            self.header.subtitle.setText("Pick a model to see what is inside its GGUF file.")
            return
        e, i = self.entry, self.entry.info
        self.picker.setCurrentIndex(max(0, self.picker.findData(e.id)))
        self.header.title.setText(i.name)
        subtitle = (
            f"{i.architecture} · {format_params(i.n_params)} parameters · {i.quant} · {format_bytes(e.file_bytes)}"
        )
        if i.title and i.title != i.name:
            subtitle = f"{i.title} — {subtitle}"
        self.header.subtitle.setText(subtitle)
        where = e.id if len(e.paths) == 1 else f"{e.id} (+{len(e.paths) - 1} more parts)"
        self.path_label.setText(f"{e.source_label}: {where}")
        self.warning.setText("\n".join(i.warnings))
        self.warning.setVisible(bool(i.warnings))
        self.arch_grid.set_rows(architecture_rows(i))
        self._fill_mix(i)
        if i.chat_template:
            self.template.setPlainText(i.chat_template)
        else:
            self.template.setPlainText(
                "This file has no chat template (tokenizer.chat_template). Chat will fall back to a "
                "generic template, which may make a chat-tuned model answer worse."
            )
        self.meta_model.removeRows(0, self.meta_model.rowCount())
        for m in i.metadata:
            row = [QStandardItem(m.key), QStandardItem(m.type), QStandardItem(m.value)]
            row[2].setToolTip(m.value)
            self.meta_model.appendRow(row)
        self._load_shape(e)

    # -- fit panel -------------------------------------------------------------------------------
    def _load_shape(self, entry: LibraryEntry) -> None:
        """Read the header(s) again for the predictor, off the GUI thread."""
        if self._shape_for == entry.id:
            return
        self._shape_for = entry.id
        self._shape = None
        self.fit_panel.set_model(None, None)
        self.fit_panel.show_measurement(None)
        work.start(
            self,
            _read_for_fit,
            entry.id,
            on_result=lambda result, eid=entry.id: self._shape_ready(eid, result),
            on_error=lambda exc: self.ctx.notify(f"Could not read {entry.file_name}: {exc}", "error"),
        )

    def _shape_ready(self, entry_id: str, result) -> None:
        if entry_id != self._shape_for:
            return  # the user moved on to another model
        self._shape, self._fingerprint, last = result
        self.fit_panel.show_measurement(last)
        self._apply_fit()

    def _apply_fit(self) -> None:
        hw = self.ctx.hardware
        if self._shape is not None and hw is not None:
            self.fit_panel.set_model(self._shape, Machine.from_hardware(hw))

    def _measure(self, settings) -> None:
        if self._measuring or self.entry is None or self.fit_panel.prediction is None:
            return
        self._measuring = True
        self.fit_panel.measure_button.setEnabled(False)
        self.fit_panel.measure_button.setText("Measuring…")
        entry_id = self.entry.id
        work.start(self, measure_and_record, entry_id, settings, self.fit_panel.prediction,
                   on_result=lambda rec: self._measured(entry_id, rec),
                   on_error=lambda exc: self.ctx.notify(str(exc), "error"), on_finished=self._measure_done)  # fmt: skip

    def _measured(self, entry_id: str, rec) -> None:
        if entry_id == self._shape_for:
            self.fit_panel.show_measurement(rec)

    def _measure_done(self) -> None:
        self._measuring = False
        self.fit_panel.measure_button.setEnabled(True)
        self.fit_panel.measure_button.setText("Measure with llama.cpp")

    def _fill_mix(self, i: ModelInfo) -> None:
        total = i.tensor_bytes or 1
        self.mix_table.setRowCount(len(i.tensor_mix))
        for r, t in enumerate(i.tensor_mix):
            cells = [
                t.type_name,
                f"{t.count}",
                format_params(t.n_elements),
                format_bytes(t.n_bytes),
                f"{t.n_bytes / total * 100:.1f} %",
                f"{t.bits_per_weight:.2f}",
            ]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.mix_table.setItem(r, c, item)
        self.mix_summary.setText(
            f"{i.mix_text()} — {format_bytes(i.tensor_bytes)} of weights, {i.bits_per_weight:.2f} bits per weight"
            if i.tensor_mix
            else "No tensors in this file."
        )

    def _copy_path(self) -> None:
        if self.entry is not None:
            QGuiApplication.clipboard().setText(self.entry.id)
            self.ctx.notify(f"Copied {self.entry.id}")

    def _reveal(self) -> None:
        if self.entry is not None and not reveal_in_file_manager(self.entry.id):
            self.ctx.notify(f"Could not open a file manager. The file is at {self.entry.id}", "warning")
