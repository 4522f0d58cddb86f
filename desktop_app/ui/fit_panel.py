"""The fit panel: will this model fit on this computer, at this context length, and where?

Used by Model details: give it a ModelShape and the hardware; it predicts on
every change of the controls (arithmetic only, well under a millisecond), so the slider stays fluid.
"""

from __future__ import annotations

import datetime as dt

from PySide6.QtCore import QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPalette, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QSizePolicy,
    QSlider,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.gguf.quant_names import KV_CACHE_NOTES, KV_CACHE_TYPES, STANDARD_QUANTS
from desktop_app.core.kinds import Verdict
from desktop_app.core.memory import DeviceMemory, Machine, Prediction, Predictor, RunSettings
from desktop_app.core.memory.explain import QuantOption, ctx_words, largest_fitting, quant_options, verdict_sentence
from desktop_app.core.memory.history import MeasurementRecord
from desktop_app.core.memory.shape import ModelShape
from desktop_app.core.units import format_bytes

SEGMENTS = [
    ("weights_bytes", "Model weights", "#3b82f6"),
    ("kv_cache_bytes", "Conversation memory (KV cache)", "#f59e0b"),
    ("compute_bytes", "Working space (compute)", "#10b981"),
    ("overhead_bytes", "Engine overhead", "#8b5cf6"),
]
CTX_STEP = 256


class MemoryBar(QWidget):
    """A stacked bar of one device's memory by component, against what is free."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = title
        self.parts: list[tuple[int, str]] = []
        self.free = 0
        self.setMinimumHeight(84)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def sizeHint(self) -> QSize:
        return QSize(400, 84)

    def set_memory(self, mem: DeviceMemory, free: int) -> None:
        self.parts = [(getattr(mem, key) + (mem.output_bytes if key == "compute_bytes" else 0), color)
                      for key, _label, color in SEGMENTS]  # fmt: skip
        if mem.reclaimable_bytes:
            self.parts[0] = (self.parts[0][0] - mem.reclaimable_bytes, self.parts[0][1])
        self.free = max(free, 0)
        self.setToolTip(
            "\n".join(f"{label}: {format_bytes(getattr(mem, key))}" for key, label, _ in SEGMENTS)
            + f"\nFree now: {format_bytes(free)}"
        )
        self.update()

    def _segments(self, p: QPainter, bar: QRectF, total: int, labels: bool) -> None:
        x = bar.left()
        for value, color in self.parts:
            w = bar.width() * value / total if total else 0
            if w <= 0:
                continue
            rect = QRectF(x, bar.top(), w, bar.height())
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(color))
            p.drawRect(rect)
            text = format_bytes(value)
            if labels and p.fontMetrics().horizontalAdvance(text) + 8 < w:
                p.setPen(QColor("white"))
                p.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
            x += w

    def paintEvent(self, _event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        used = sum(v for v, _ in self.parts)
        left = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter
        share = used / self.free * 100 if self.free else 0
        p.setPen(pal.color(QPalette.ColorRole.WindowText))
        title = f"{self.title}: {format_bytes(used)} needed of {format_bytes(self.free)} free ({share:.0f} %)"
        p.drawText(QRectF(0, 0, self.width(), 20), left, title)
        # what it takes, component by component (100 % = what is needed)
        self._segments(p, QRectF(0, 22, self.width() - 1, 26), used, labels=True)
        # how that compares with what is free
        bar = QRectF(0, 56, self.width() - 1, 12)
        scale_max = max(used, self.free, 1)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(pal.color(QPalette.ColorRole.AlternateBase))
        p.drawRoundedRect(bar, 3, 3)
        self._segments(p, QRectF(bar.left(), bar.top(), bar.width() * used / scale_max, bar.height()), used, False)
        fx = bar.left() + bar.width() * self.free / scale_max
        p.setPen(QPen(QColor("#dc2626") if used > self.free else pal.color(QPalette.ColorRole.WindowText), 2))
        p.drawLine(int(fx) - 1, int(bar.top()) - 3, int(fx) - 1, int(bar.bottom()) + 3)
        p.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
        p.drawText(QRectF(0, 68, self.width(), 16), left, "against what is free now (line)")
        p.end()


class FitPanel(QWidget):
    """Controls (context, KV cache type, GPU layers) → the prediction, in words and bars."""

    measure_requested = Signal(object)  # RunSettings
    changed = Signal(object)  # Prediction

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.shape: ModelShape | None = None
        self.machine: Machine | None = None
        self.predictor: Predictor | None = None
        self.prediction: Prediction | None = None
        self._what_if: list[QuantOption] = []
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_controls())
        self._build_prediction(layout)
        self._build_other_quants(layout)
        layout.addLayout(self._build_measure_row())
        self._wire()
        self.setEnabled(False)

    # -- building ------------------------------------------------------------------------------
    def _build_controls(self) -> QGridLayout:
        """Context length, KV cache type and GPU layers."""
        controls = QGridLayout()
        controls.addWidget(QLabel("Context length"), 0, 0)
        self.ctx_slider = QSlider(Qt.Orientation.Horizontal)
        self.ctx_slider.setToolTip("How many tokens of conversation the model can keep in view")
        self.ctx_value = QLabel()
        self.ctx_value.setMinimumWidth(150)
        controls.addWidget(self.ctx_slider, 0, 1)
        controls.addWidget(self.ctx_value, 0, 2)
        controls.addWidget(QLabel("KV cache type"), 1, 0)
        self.kv_combo = QComboBox()
        for key in KV_CACHE_TYPES:
            self.kv_combo.addItem(f"{key} ({KV_CACHE_NOTES[key]})", key)
        controls.addWidget(self.kv_combo, 1, 1)
        controls.addWidget(QLabel("GPU layers"), 2, 0)
        gl = QHBoxLayout()
        self.auto_layers = QCheckBox("Automatic (as many as fit)")
        self.auto_layers.setChecked(True)
        self.layers_spin = QSpinBox()
        self.layers_spin.setEnabled(False)
        gl.addWidget(self.auto_layers)
        gl.addWidget(self.layers_spin)
        gl.addStretch(1)
        controls.addLayout(gl, 2, 1)
        controls.setColumnStretch(1, 1)
        return controls

    def _build_prediction(self, layout: QVBoxLayout) -> None:
        """Into layout: the verdict, the largest context, the two memory bars, their legend and the details."""
        self.verdict = QLabel()
        self.verdict.setObjectName("verdict")
        self.verdict.setWordWrap(True)
        layout.addWidget(self.verdict)
        self.max_ctx = QLabel()
        self.max_ctx.setObjectName("muted")
        layout.addWidget(self.max_ctx)
        self.ram_bar = MemoryBar("RAM")
        self.vram_bar = MemoryBar("GPU memory")
        layout.addWidget(self.ram_bar)
        layout.addWidget(self.vram_bar)
        layout.addLayout(self._build_legend())
        self.details = QLabel()
        self.details.setObjectName("muted")
        self.details.setWordWrap(True)
        layout.addWidget(self.details)

    def _build_legend(self) -> QHBoxLayout:
        legend = QHBoxLayout()
        self.legend_labels: dict[str, QLabel] = {}
        for key, label, color in SEGMENTS:
            swatch = QLabel("■")
            swatch.setStyleSheet(f"color: {color}; font-size: 16px;")
            text = QLabel(label)
            self.legend_labels[key] = text
            legend.addWidget(swatch)
            legend.addWidget(text)
            legend.addSpacing(10)
        legend.addStretch(1)
        return legend

    def _build_other_quants(self, layout: QVBoxLayout) -> None:
        """Into layout: the what-if table of the standard quants, with its title and note."""
        self.quants_title = QLabel("Other quants of this model")
        self.quants_title.setObjectName("cardTitle")
        layout.addWidget(self.quants_title)
        self.quants_note = QLabel()
        self.quants_note.setObjectName("muted")
        self.quants_note.setWordWrap(True)
        layout.addWidget(self.quants_note)
        self.quants_table = QTableWidget(0, 4)
        self.quants_table.setHorizontalHeaderLabels(["Quant", "File size", "Memory needed", "On this computer"])
        self.quants_table.verticalHeader().hide()
        self.quants_table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.quants_table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.quants_table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.quants_table.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.quants_table, 1)

    def _build_measure_row(self) -> QHBoxLayout:
        mrow = QHBoxLayout()
        self.measured = QLabel("Not measured yet on this computer.")
        self.measured.setWordWrap(True)
        self.measure_button = QPushButton("Measure with llama.cpp")
        self.measure_button.setToolTip("Load the model in llama.cpp (in the background) and record what it allocates")
        mrow.addWidget(self.measured, 1)
        mrow.addWidget(self.measure_button)
        return mrow

    def _wire(self) -> None:
        self.ctx_slider.valueChanged.connect(self._update)
        self.kv_combo.currentIndexChanged.connect(self._update)
        self.auto_layers.toggled.connect(self._auto_toggled)
        self.layers_spin.valueChanged.connect(self._update)
        self.measure_button.clicked.connect(lambda: self.measure_requested.emit(self.settings()))

    # -- inputs --------------------------------------------------------------------------------
    def set_model(self, shape: ModelShape | None, machine: Machine | None) -> None:
        self.shape, self.machine = shape, machine
        self.predictor = Predictor(shape, machine) if shape is not None and machine is not None else None
        self.setEnabled(self.predictor is not None)
        if self.predictor is None:
            self.verdict.setText("Waiting for the model's header and the hardware probe…")
            return
        top = max(shape.n_ctx_train, 512)
        self.ctx_slider.blockSignals(True)
        self.ctx_slider.setRange(512 // CTX_STEP, max(top // CTX_STEP, 2))
        self.ctx_slider.setPageStep(max(1, 2048 // CTX_STEP))
        self.ctx_slider.setValue(min(4096, top) // CTX_STEP)
        self.ctx_slider.blockSignals(False)
        self.layers_spin.blockSignals(True)
        self.layers_spin.setRange(0, shape.n_layer + 1)
        self.layers_spin.setValue(shape.n_layer + 1)
        self.layers_spin.blockSignals(False)
        can_offload = machine.has_gpu
        self.auto_layers.setEnabled(can_offload)
        if not can_offload:
            self.auto_layers.setChecked(True)
            self.auto_layers.setToolTip("No GPU that this llama.cpp build can use: everything runs on the CPU")
        self.vram_bar.setVisible(can_offload)
        self._plan_other_quants()
        self._update()

    def _plan_other_quants(self) -> None:
        """Predictors for the standard quants llama.cpp would make from this file (planned once)."""
        shape = self.shape
        self._what_if = quant_options(shape, self.machine, tuple(reversed(STANDARD_QUANTS)))  # smallest first
        src = shape.file_type or "?"
        if src in ("F16", "BF16", "F32"):
            self.quants_note.setText(f"Predicted from this {src} file with llama.cpp's own per-tensor rules.")
        else:
            self.quants_note.setText(
                f"Predicted sizes if made from this {src} file (requantizing loses some quality: start from an "
                "F16 or BF16 file when you can). Sizes follow llama.cpp's own per-tensor rules."
            )
        self.quants_table.setVisible(bool(self._what_if))
        self.quants_title.setVisible(bool(self._what_if))
        self.quants_note.setVisible(bool(self._what_if))

    def settings(self) -> RunSettings:
        return RunSettings(
            n_ctx=self.ctx_slider.value() * CTX_STEP,
            n_gpu_layers="auto" if self.auto_layers.isChecked() else self.layers_spin.value(),
            kv_type=self.kv_combo.currentData(),
        )

    def set_context(self, n_ctx: int) -> None:
        self.ctx_slider.setValue(max(n_ctx // CTX_STEP, self.ctx_slider.minimum()))

    def _auto_toggled(self, on: bool) -> None:
        self.layers_spin.setEnabled(not on and self.auto_layers.isEnabled())
        self._update()

    # -- output --------------------------------------------------------------------------------
    def _update(self, *_args) -> None:
        if self.predictor is None:
            return
        s = self.settings()
        self.ctx_value.setText(f"{s.n_ctx:,} tokens ({ctx_words(s.n_ctx)})")
        p = self.predictor.predict(s)
        self.prediction = p
        smaller = self._fill_quants(s, p)
        for key, label, _color in SEGMENTS:
            value = getattr(p.ram, key) + getattr(p.vram, key)
            if key == "weights_bytes":
                value -= p.ram.reclaimable_bytes
            if key == "compute_bytes":
                value += p.ram.output_bytes
            self.legend_labels[key].setText(f"{label}: {format_bytes(value)}")
        self.verdict.setText(verdict_sentence(p, gpu_name=self.machine.gpu_name, smaller_quant=smaller))
        color = {
            Verdict.FULL_GPU: "#15803d",
            Verdict.PARTIAL_GPU: "#15803d",
            Verdict.CPU_ONLY: "#15803d",
            Verdict.TOO_LARGE: "#b91c1c",
        }
        self.verdict.setStyleSheet(f"font-size: 15px; font-weight: 600; color: {color[p.verdict]};")
        if p.max_ctx:
            self.max_ctx.setText(f"Largest context that fits with these settings: {p.max_ctx:,} tokens "
                                 f"(the model was trained for {self.shape.n_ctx_train:,}).")  # fmt: skip
        else:
            self.max_ctx.setText("Does not fit even at the shortest context: try a smaller quant.")
        self.ram_bar.set_memory(p.ram, p.ram_free_bytes)
        self.vram_bar.set_memory(p.vram, p.vram_free_bytes)
        parts = [
            f"weights {format_bytes(p.ram.weights_bytes + p.vram.weights_bytes)}",
            f"KV cache {format_bytes(p.ram.kv_cache_bytes + p.vram.kv_cache_bytes)} ({p.kv_type})",
            f"compute {format_bytes(p.ram.compute_bytes + p.vram.compute_bytes)}",
            f"GPU layers {p.n_gpu_layers}/{p.n_layer + 1}",
            f"flash attention {'on' if p.flash_attn else 'off'}",
        ]
        if p.ram.repack_bytes:
            parts.append(f"incl. a {format_bytes(p.ram.repack_bytes)} CPU repack copy (the file's own pages "
                         "of those weights can be dropped by the OS)")  # fmt: skip
        text = "llama.cpp will allocate: " + ", ".join(parts) + "."
        if p.approximate:
            text += " Approximate: " + "; ".join(p.notes) + "."
        self.details.setText(text)
        self.changed.emit(p)

    def _fill_quants(self, s: RunSettings, current: Prediction) -> str | None:
        """Fill the what-if table; return the largest quant that fits when the current one does not."""
        words = {
            Verdict.FULL_GPU: "fits on the GPU",
            Verdict.PARTIAL_GPU: "fits, partly on the GPU",
            Verdict.CPU_ONLY: "fits (CPU)",
            Verdict.TOO_LARGE: "too large",
        }
        self.quants_table.setRowCount(len(self._what_if))
        for r, option in enumerate(self._what_if):
            p = option.predictor.predict(s, with_max_ctx=False)
            need = p.ram.needed_bytes + p.vram.needed_bytes
            mark = " (this file)" if option.quant == self.shape.file_type else ""
            cells = [option.quant + mark, format_bytes(option.file_bytes), format_bytes(need), words[p.verdict]]
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if p.verdict == Verdict.TOO_LARGE:
                    item.setForeground(QColor("#b91c1c"))
                self.quants_table.setItem(r, c, item)
        if current.verdict != Verdict.TOO_LARGE:
            return None
        best = largest_fitting(self._what_if, s, below_bytes=self.shape.file_bytes)
        return best.quant if best else None

    def show_measurement(self, rec: MeasurementRecord | None) -> None:
        if rec is None:
            self.measured.setText("Not measured yet on this computer.")
            return
        m, s = rec.measured, rec.settings
        when = dt.datetime.fromtimestamp(rec.created_at).strftime("%Y-%m-%d %H:%M")
        total = m["weights_bytes"] + m["kv_cache_bytes"] + m["compute_bytes"] + m["output_bytes"]
        pred = sum(rec.predicted.values())
        err = (pred - total) / total * 100 if total else 0
        head = f"Measured last time ({when}, {s['n_ctx']:,} context, KV {s['kv_type']}): "
        body = (
            f"llama.cpp allocated {format_bytes(total)} — weights {format_bytes(m['weights_bytes'])}, "
            f"KV {format_bytes(m['kv_cache_bytes'])}, compute {format_bytes(m['compute_bytes'])}. "
        )
        self.measured.setText(head + body + f"The prediction was {err:+.1f} % off.")
