"""The Chat page's model bar: pick a model, check that it fits, load it in the engine, say how it went."""

from __future__ import annotations

import logging
import os

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QMessageBox, QPushButton, QVBoxLayout, QWidget

from desktop_app.core.engine import EngineError
from desktop_app.core.kinds import ModelKind, Verdict
from desktop_app.core.memory import Machine, Predictor, RunSettings, model_shape
from desktop_app.core.memory.explain import verdict_sentence
from desktop_app.core.memory.history import model_fingerprint, record_load
from desktop_app.ui.context import AppContext
from desktop_app.ui.engine_client import EngineClient
from desktop_app.ui.widgets import muted

log = logging.getLogger(__name__)


class ModelBar(QWidget):
    """Loads through the page's engine; the page hears ``loaded`` (info from the engine) or
    ``not_loaded`` (unreadable, declined, refused by llama.cpp)."""

    loaded = Signal(object)
    not_loaded = Signal()

    def __init__(self, ctx: AppContext, engine: EngineClient, run_settings, seed,
                 parent: QWidget | None = None) -> None:  # fmt: skip
        super().__init__(parent)
        self.ctx = ctx
        self.engine = engine
        self._run_settings = run_settings  # model context -> RunSettings (the settings panel's)
        self._seed = seed  # () -> int | None
        self.loaded_entry = None  # LibraryEntry of the model in the engine
        self.fingerprint = ""  # of the loaded model's file
        self.prediction = None  # the fit prediction the loaded model was checked with
        self.confirm_large_loads = True  # ask before loading a model predicted not to fit
        self._loading = None  # (LibraryEntry, fingerprint) being loaded
        self._load_after_hardware: bool | None = None  # a load asked for while the hardware check runs
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        top = QHBoxLayout()
        self.combo = QComboBox()
        self.combo.setMinimumWidth(260)
        self.combo.setToolTip("The model to chat with (from your library)")
        self.load_button = QPushButton("Load")
        top.addWidget(self.combo, 1)
        top.addWidget(self.load_button)
        layout.addLayout(top)
        self.status = QLabel("No model loaded.")
        self.status.setObjectName("muted")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.template_label = muted("")
        layout.addWidget(self.template_label)
        self.load_button.clicked.connect(self.load_selected)
        engine.loaded.connect(self._loaded)
        ctx.library_changed.connect(self.fill)
        ctx.hardware_changed.connect(self._hardware_known)
        ctx.hardware_failed.connect(self._hardware_known)
        self.fill()

    def fill(self) -> None:
        current = self.combo.currentData()
        self.combo.clear()
        for e in self.ctx.entries:
            if e.info is not None and e.info.kind == ModelKind.MODEL:
                self.combo.addItem(f"{e.info.name} ({e.info.quant})", e.id)
        if current:
            self.combo.setCurrentIndex(max(0, self.combo.findData(current)))
        elif self.ctx.selected is not None:
            self.combo.setCurrentIndex(max(0, self.combo.findData(self.ctx.selected.id)))

    def load_selected(self, *, confirm: bool = True) -> bool:
        """Check the prediction, then load the chosen model with GPU layers chosen from it."""
        entry = self.ctx.find_entry(self.combo.currentData() or "")
        if entry is None:
            self.ctx.notify("Pick a model first (add models on the Models page).", "warning")
            return False
        if self.engine.busy_request is not None:
            self.engine.stop()  # switching models mid-answer: keep what was written, then switch
        if self.ctx.hardware is None and self.ctx.hardware_pending():
            # the first start on a new build or CPU checks how llama.cpp runs here: load after it
            self.status.setText("Checking how llama.cpp runs on this computer before loading…")
            self._load_after_hardware = confirm
            return True
        run = self._run_settings(entry.info.context_length)
        self.status.setText(f"Checking whether {entry.info.name} fits…")
        self.load_button.setEnabled(False)
        hw = self.ctx.hardware

        def predict():
            from desktop_app.core.gguf import read_model_headers

            fingerprint = model_fingerprint(entry.id)
            if hw is None:
                return None, fingerprint
            shape = model_shape(read_model_headers(entry.id))
            return Predictor(shape, Machine.from_hardware(hw)).predict(run), fingerprint

        self.ctx.run_io(predict, owner=self, on_result=lambda r: self._checked(entry, run, r, confirm),
                        on_error=lambda exc: self._unreadable(entry, exc))  # fmt: skip
        return True

    def _hardware_known(self, *_args) -> None:
        if self._load_after_hardware is not None:
            confirm, self._load_after_hardware = self._load_after_hardware, None
            self.load_selected(confirm=confirm)

    def _unreadable(self, entry, exc: Exception) -> None:
        """The header could not be read for the fit check: llama.cpp would say the same."""
        self.ctx.notify(f"{entry.file_name}: {exc}", "error")
        self.load_failed()

    def load_failed(self, status: str = "The model could not be loaded.") -> None:
        self.load_button.setEnabled(True)
        self.status.setText(status)
        self.not_loaded.emit()

    def engine_died(self) -> None:
        self.loaded_entry = None
        self.load_button.setEnabled(True)
        self.status.setText("The engine stopped.")

    def _confirmed(self, prediction, confirm: bool) -> bool:
        """A model predicted not to fit loads only when the user says so."""
        if prediction is None or prediction.verdict != Verdict.TOO_LARGE or not confirm or not self.confirm_large_loads:
            return True
        gpu = self.ctx.hardware.gpus[0].name if self.ctx.hardware and self.ctx.hardware.gpus else None
        answer = QMessageBox.warning(
            self, "This model may not fit", verdict_sentence(prediction, gpu_name=gpu) + "\n\nLoad it anyway?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        )  # fmt: skip
        return answer == QMessageBox.StandardButton.Yes

    def _checked(self, entry, run: RunSettings, result, confirm: bool) -> None:
        self.load_button.setEnabled(True)
        prediction, fingerprint = result
        if not self._confirmed(prediction, confirm):
            self.load_failed("Not loaded.")
            return
        gpu_layers = prediction.n_gpu_layers if prediction is not None else 0
        if prediction is None and run.n_gpu_layers != "auto":
            gpu_layers = int(run.n_gpu_layers)
        self.prediction = prediction
        has_template = bool(entry.info.chat_template)
        self.status.setText(f"Loading {entry.info.name}…")
        self.load_button.setEnabled(False)
        self._loading = (entry, fingerprint)
        try:
            self.engine.load(
                entry.id, n_ctx=run.n_ctx, n_gpu_layers=gpu_layers, kv_type=run.kv_type, flash_attn=run.flash_attn,
                mmap=run.mmap, has_template=has_template, seed=self._seed(),
            )  # fmt: skip
        except EngineError as exc:
            self.ctx.notify(str(exc), "error")
            self.load_failed()
            return
        self.template_label.setText(
            "Chat template: the model's own (from its GGUF)" if has_template
            else "This model has no chat template: using ChatML, which may make answers worse"
        )  # fmt: skip

    def _loaded(self, info: dict) -> None:
        entry, self.fingerprint = self._loading or (None, "")
        self.loaded_entry = entry
        self.load_button.setEnabled(True)
        name = entry.info.name if entry else os.path.basename(info["path"])
        self.status.setText(
            f"{name} loaded in {info['load_s']:.1f} s — {info['n_ctx']:,} context"
            + (f", {self.prediction.n_gpu_layers} GPU layers" if self.prediction else "")
            + (f", {info['n_threads']} threads" if info.get("n_threads") else "")
        )
        if entry is not None and self.prediction is not None:  # learning from reality, on the io thread
            self.ctx.run_io(record_load, entry.id, info["log"], self.prediction,
                            on_error=lambda exc: log.warning("could not record the load: %s", exc))  # fmt: skip
        self.loaded.emit(info)
