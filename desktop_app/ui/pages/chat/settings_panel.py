"""The Chat page's right-hand panel: how answers are sampled, and the settings a model loads with."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QLabel, QSpinBox, QWidget

from desktop_app.core.engine import LLAMA_CPP_DEFAULTS, PRESET_NOTES, PRESETS, Sampling
from desktop_app.core.gguf.quant_names import KV_CACHE_TYPES
from desktop_app.core.memory import RunSettings
from desktop_app.ui.widgets import muted


class ChatSettingsPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        form = QFormLayout(self)
        self._sampling_rows(form)
        title = QLabel("Model settings (apply on load)")
        title.setObjectName("cardTitle")
        form.addRow(title)
        self._load_rows(form)
        self.preset.currentTextChanged.connect(self.apply_preset)
        self.apply_preset(LLAMA_CPP_DEFAULTS)

    def _sampling_rows(self, form: QFormLayout) -> None:
        self.preset = QComboBox()
        for name in PRESETS:
            self.preset.addItem(name)
            self.preset.setItemData(self.preset.count() - 1, PRESET_NOTES[name], Qt.ItemDataRole.ToolTipRole)
        self.preset.setCurrentText(LLAMA_CPP_DEFAULTS)
        form.addRow("Preset", self.preset)
        self.preset_note = muted(PRESET_NOTES[LLAMA_CPP_DEFAULTS])
        self.preset_note.setWordWrap(True)
        form.addRow(self.preset_note)
        self.temperature = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=2.0, singleStep=0.05)
        self.top_p = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=1.0, singleStep=0.01)
        self.top_k = QSpinBox(minimum=0, maximum=1000)
        self.min_p = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=1.0, singleStep=0.01)
        self.repeat_penalty = QDoubleSpinBox(decimals=2, minimum=0.5, maximum=2.0, singleStep=0.05)
        self.max_tokens = QSpinBox(minimum=1, maximum=32768)
        self.seed = QSpinBox(minimum=-1, maximum=2**31 - 1)
        self.seed.setSpecialValueText("random")
        self.seed.setValue(-1)
        for label, w in (("Temperature", self.temperature), ("Top-p", self.top_p), ("Top-k", self.top_k),
                         ("Min-p", self.min_p), ("Repeat penalty", self.repeat_penalty),
                         ("Max tokens", self.max_tokens), ("Seed", self.seed)):  # fmt: skip
            form.addRow(label, w)

    def _load_rows(self, form: QFormLayout) -> None:
        self.ctx_spin = QSpinBox(minimum=256, maximum=1 << 20, singleStep=256)
        self.ctx_spin.setValue(4096)
        self.ctx_spin.setToolTip("Context length in tokens; the Model details page shows what fits")
        self.gpu_layers_spin = QSpinBox(minimum=-1, maximum=999)
        self.gpu_layers_spin.setSpecialValueText("auto")
        self.gpu_layers_spin.setValue(-1)
        self.gpu_layers_spin.setToolTip("auto: as many layers on the GPU as the memory prediction says fit")
        self.kv_type_combo = QComboBox()
        self.kv_type_combo.addItems(list(KV_CACHE_TYPES))
        self.flash_combo = QComboBox()
        self.flash_combo.addItems(["auto", "on", "off"])
        self.mmap_box = QCheckBox("Memory-map the file (mmap)")
        self.mmap_box.setChecked(True)
        for label, w in (("Context", self.ctx_spin), ("GPU layers", self.gpu_layers_spin),
                         ("KV cache", self.kv_type_combo),
                         ("Flash attention", self.flash_combo)):  # fmt: skip
            form.addRow(label, w)
        form.addRow(self.mmap_box)

    def apply_preset(self, name: str) -> None:
        s = PRESETS.get(name)
        if s is None:
            return
        self.preset_note.setText(PRESET_NOTES[name])
        self.temperature.setValue(s.temperature)
        self.top_p.setValue(s.top_p)
        self.top_k.setValue(s.top_k)
        self.min_p.setValue(s.min_p)
        self.repeat_penalty.setValue(s.repeat_penalty)
        self.max_tokens.setValue(s.max_tokens)

    def chosen_seed(self) -> int | None:
        return None if self.seed.value() < 0 else self.seed.value()

    def sampling(self) -> Sampling:
        return Sampling(
            temperature=self.temperature.value(), top_p=self.top_p.value(), top_k=self.top_k.value(),
            min_p=self.min_p.value(), repeat_penalty=self.repeat_penalty.value(), max_tokens=self.max_tokens.value(),
            seed=self.chosen_seed(),
        )  # fmt: skip

    def run_settings(self, model_context: int | None) -> RunSettings:
        """How to load a model whose trained context is ``model_context`` (never more than that)."""
        return RunSettings(
            n_ctx=min(self.ctx_spin.value(), model_context or self.ctx_spin.value()),
            n_gpu_layers="auto" if self.gpu_layers_spin.value() < 0 else self.gpu_layers_spin.value(),
            kv_type=self.kv_type_combo.currentText(),
            flash_attn=self.flash_combo.currentText(),
            mmap=self.mmap_box.isChecked(),
        )
