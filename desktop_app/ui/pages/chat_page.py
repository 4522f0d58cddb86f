"""Chat: talk to a local model through the engine child process, with conversations saved as you go."""

from __future__ import annotations

import html
import logging
import os
import re
import time

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QGuiApplication, QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.chat.export import dumps_json, from_json, to_markdown
from desktop_app.core.chat.store import ChatStore, Conversation, Message, new_conversation_id
from desktop_app.core.engine import LLAMA_CPP_DEFAULTS, PRESET_NOTES, PRESETS, EngineError, Sampling
from desktop_app.core.gguf.quant_names import KV_CACHE_TYPES
from desktop_app.core.kinds import ModelKind, Verdict
from desktop_app.core.memory import Machine, Predictor, RunSettings, model_shape
from desktop_app.core.memory.explain import verdict_sentence
from desktop_app.core.memory.history import MeasurementRecord, MeasurementStore, model_fingerprint
from desktop_app.core.memory.llama_log import parse_llama_log
from desktop_app.ui.context import AppContext
from desktop_app.ui.engine_client import EngineClient
from desktop_app.ui.markdown_html import to_html, warm_up
from desktop_app.ui.widgets import muted

log = logging.getLogger(__name__)

RENDER_INTERVAL_MS = 50  # coalesce streamed tokens into one repaint
SAVE_INTERVAL_S = 1.0  # write the answer being streamed at most this often
_CODE_RE = re.compile(r"<pre><code( class=\"[^\"]*\")?>(.*?)</code></pre>", re.S)


def render_markdown(text: str, msg_index: int, code_bg: str = "#e5e7eb") -> str:
    """Markdown → HTML for QTextBrowser, with a Copy link on every code block."""
    body = to_html(text)
    counter = iter(range(1000))

    def code(m: re.Match) -> str:
        n = next(counter)
        return (
            f'<table width="100%" cellpadding="6" bgcolor="{code_bg}"><tr><td><pre style="margin:0">'
            f"{m.group(2)}</pre></td></tr></table>"
            f'<p align="right" style="margin:0"><a href="copy:{msg_index}:{n}">Copy code</a></p>'
        )

    return _CODE_RE.sub(code, body)


def code_blocks(text: str) -> list[str]:
    return [html.unescape(m.group(2)) for m in _CODE_RE.finditer(to_html(text))]


class _EnterToSend(QObject):
    """Enter sends, Shift+Enter makes a new line, Esc stops."""

    send = Signal()
    stop = Signal()

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt naming)
        if event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
                event.modifiers() & Qt.KeyboardModifier.ShiftModifier
            ):
                self.send.emit()
                return True
            if event.key() == Qt.Key.Key_Escape:
                self.stop.emit()
                return True
        return False


class ChatPage(QWidget):
    title = "Chat"
    answer_finished = Signal()
    list_refreshed = Signal()
    conversation_opened = Signal()

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        ctx.run_io(warm_up)  # compile markdown's regular expressions before the first answer needs them
        self.store = ChatStore()
        self.engine = EngineClient(self)
        self.conv: Conversation | None = None
        self.loaded_entry = None  # LibraryEntry of the model in the engine
        self.n_ctx = 0
        self.tokens_used = 0
        self._request: int | None = None
        self._answer_index: int | None = None  # message being streamed
        self._pending_send: list[dict[str, str]] | None = None
        self._last_save = 0.0
        self._editing: int | None = None
        self._prediction = None
        self._load_after_hardware: bool | None = None  # a load asked for while the hardware check runs
        self.confirm_large_loads = True  # ask before loading a model predicted not to fit
        self._store_problem_told = False

        outer = QHBoxLayout(self)
        outer.setContentsMargins(24, 20, 24, 12)
        split = QSplitter(Qt.Orientation.Horizontal)
        outer.addWidget(split)

        # conversations
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 8, 0)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search conversations")
        self.search.setClearButtonEnabled(True)
        ll.addWidget(self.search)
        self.conv_list = QListWidget()
        ll.addWidget(self.conv_list, 1)
        row = QHBoxLayout()
        self.new_button = QPushButton("New")
        self.rename_button = QPushButton("Rename")
        self.delete_button = QPushButton("Delete")
        for b in (self.new_button, self.rename_button, self.delete_button):
            row.addWidget(b)
        ll.addLayout(row)
        row = QHBoxLayout()
        self.export_md_button = QPushButton("Export .md")
        self.export_json_button = QPushButton("Export .json")
        self.import_button = QPushButton("Import…")
        for b in (self.export_md_button, self.export_json_button, self.import_button):
            row.addWidget(b)
        ll.addLayout(row)
        split.addWidget(left)

        # the conversation
        mid = QWidget()
        ml = QVBoxLayout(mid)
        ml.setContentsMargins(8, 0, 8, 0)
        top = QHBoxLayout()
        self.model_combo = QComboBox()
        self.model_combo.setMinimumWidth(260)
        self.model_combo.setToolTip("The model to chat with (from your library)")
        self.load_button = QPushButton("Load")
        self.engine_status = QLabel("No model loaded.")
        self.engine_status.setObjectName("muted")
        self.engine_status.setWordWrap(True)
        top.addWidget(self.model_combo, 1)
        top.addWidget(self.load_button)
        ml.addLayout(top)
        ml.addWidget(self.engine_status)
        self.gauge = QProgressBar()
        self.gauge.setTextVisible(True)
        self.gauge.setFormat("Context: no model loaded")
        self.gauge.setMaximumHeight(18)
        ml.addWidget(self.gauge)
        self.system_edit = QLineEdit()
        self.system_edit.setPlaceholderText("System prompt for this conversation (optional)")
        ml.addWidget(self.system_edit)
        self.transcript = QTextBrowser()
        self.transcript.setOpenLinks(False)
        self.transcript.setPlaceholderText("Pick a model, load it, and say hello.")
        ml.addWidget(self.transcript, 1)
        self.reload_button = QPushButton("Reload the model")
        self.reload_button.hide()
        ml.addWidget(self.reload_button)
        self.input = QPlainTextEdit()
        self.input.setPlaceholderText("Message (Enter sends, Shift+Enter for a new line, Esc stops)")
        self.input.setMaximumHeight(110)
        ml.addWidget(self.input)
        brow = QHBoxLayout()
        self.template_label = muted("")
        brow.addWidget(self.template_label, 1)
        self.regenerate_button = QPushButton("Regenerate")
        self.stop_button = QPushButton("Stop")
        self.send_button = QPushButton("Send")
        self.send_button.setDefault(True)
        for b in (self.regenerate_button, self.stop_button, self.send_button):
            brow.addWidget(b)
        ml.addLayout(brow)
        split.addWidget(mid)

        # sampling
        right = QWidget()
        rl = QFormLayout(right)
        self.preset = QComboBox()
        for name in PRESETS:
            self.preset.addItem(name)
            self.preset.setItemData(self.preset.count() - 1, PRESET_NOTES[name], Qt.ItemDataRole.ToolTipRole)
        self.preset.setCurrentText(LLAMA_CPP_DEFAULTS)
        rl.addRow("Preset", self.preset)
        self.preset_note = muted(PRESET_NOTES[LLAMA_CPP_DEFAULTS])
        self.preset_note.setWordWrap(True)
        rl.addRow(self.preset_note)
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
            rl.addRow(label, w)
        load_title = QLabel("Model settings (apply on load)")
        load_title.setObjectName("cardTitle")
        rl.addRow(load_title)
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
            rl.addRow(label, w)
        rl.addRow(self.mmap_box)
        split.addWidget(right)
        split.setSizes([230, 760, 230])
        self._apply_preset(LLAMA_CPP_DEFAULTS)

        # wiring
        self._render_timer = QTimer(self)
        self._render_timer.setSingleShot(True)
        self._render_timer.setInterval(RENDER_INTERVAL_MS)
        self._render_timer.timeout.connect(self.render)
        keys = _EnterToSend(self)
        self.input.installEventFilter(keys)
        keys.send.connect(self.send)
        keys.stop.connect(self.stop)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), self, activated=self.stop)
        self.send_button.clicked.connect(self.send)
        self.stop_button.clicked.connect(self.stop)
        self.regenerate_button.clicked.connect(self.regenerate)
        self.load_button.clicked.connect(self.load_selected)
        self.reload_button.clicked.connect(self.load_selected)
        self.new_button.clicked.connect(self.new_conversation)
        self.rename_button.clicked.connect(self._rename)
        self.delete_button.clicked.connect(self._delete)
        self.export_md_button.clicked.connect(lambda: self._export("md"))
        self.export_json_button.clicked.connect(lambda: self._export("json"))
        self.import_button.clicked.connect(self._import)
        self.search.textChanged.connect(self.refresh_list)
        self.conv_list.currentItemChanged.connect(self._open_selected)
        self.preset.currentTextChanged.connect(self._apply_preset)
        self.system_edit.editingFinished.connect(self._system_changed)
        self.transcript.anchorClicked.connect(self._link)
        self.engine.loaded.connect(self._loaded)
        self.engine.token.connect(self._token)
        self.engine.finished.connect(self._finished)
        self.engine.failed.connect(self._failed)
        self.engine.died.connect(self._died)
        ctx.library_changed.connect(self._fill_models)
        ctx.hardware_changed.connect(self._hardware_known)
        ctx.hardware_failed.connect(self._hardware_known)
        self._fill_models()
        self.refresh_list()
        self._update_buttons()

    # -- models --------------------------------------------------------------------------------
    def _fill_models(self) -> None:
        current = self.model_combo.currentData()
        self.model_combo.clear()
        for e in self.ctx.entries:
            if e.info is not None and e.info.kind == ModelKind.MODEL:
                self.model_combo.addItem(f"{e.info.name} ({e.info.quant})", e.id)
        if current:
            self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(current)))
        elif self.ctx.selected is not None:
            self.model_combo.setCurrentIndex(max(0, self.model_combo.findData(self.ctx.selected.id)))
        self._update_buttons()

    def load_selected(self, *, confirm: bool = True) -> bool:
        """Check the prediction, then load the chosen model with GPU layers chosen from it."""
        entry = self.ctx.find_entry(self.model_combo.currentData() or "")
        if entry is None:
            self.ctx.notify("Pick a model first (add models on the Models page).", "warning")
            return False
        if self.engine.busy_request is not None:
            self.stop()  # switching models mid-answer: keep what was written, then switch
        if self.ctx.hardware is None and self.ctx.hardware_pending():
            # the first start on a new build or CPU checks how llama.cpp runs here: load after it
            self.engine_status.setText("Checking how llama.cpp runs on this computer before loading…")
            self._load_after_hardware = confirm
            return True
        n_ctx = min(self.ctx_spin.value(), entry.info.context_length or self.ctx_spin.value())
        run = RunSettings(
            n_ctx=n_ctx,
            n_gpu_layers="auto" if self.gpu_layers_spin.value() < 0 else self.gpu_layers_spin.value(),
            kv_type=self.kv_type_combo.currentText(),
            flash_attn=self.flash_combo.currentText(),
            mmap=self.mmap_box.isChecked(),
        )
        self.engine_status.setText(f"Checking whether {entry.info.name} fits…")
        self.load_button.setEnabled(False)
        hw = self.ctx.hardware

        def predict():
            from desktop_app.core.gguf import read_model_headers

            fingerprint = model_fingerprint(entry.id)
            if hw is None:
                return None, fingerprint
            shape = model_shape(read_model_headers(entry.id))
            return Predictor(shape, Machine.from_hardware(hw)).predict(run), fingerprint

        self.ctx.run_io(predict, owner=self, on_result=lambda r: self._load_checked(entry, run, r, confirm),
                        on_error=lambda exc: self._load_unreadable(entry, exc))  # fmt: skip
        return True

    def _abandon_pending(self) -> None:
        """A load that was to be followed by an answer will not happen: the answer ends here."""
        if self._pending_send is not None:
            self._pending_send = None
            self._answer_index = None
            self.answer_finished.emit()

    def _hardware_known(self, *_args) -> None:
        if self._load_after_hardware is not None:
            confirm, self._load_after_hardware = self._load_after_hardware, None
            self.load_selected(confirm=confirm)

    def _load_unreadable(self, entry, exc: Exception) -> None:
        """The header could not be read for the fit check: llama.cpp would say the same."""
        self.load_button.setEnabled(True)
        self.engine_status.setText("The model could not be loaded.")
        self.ctx.notify(f"{entry.file_name}: {exc}", "error")
        self._abandon_pending()

    def _load_checked(self, entry, run: RunSettings, result, confirm: bool) -> None:
        self.load_button.setEnabled(True)
        prediction, self._loading_fingerprint = result
        self._prediction = prediction
        gpu_layers = prediction.n_gpu_layers if prediction is not None else 0
        if prediction is None and run.n_gpu_layers != "auto":
            gpu_layers = int(run.n_gpu_layers)
        if prediction is not None and prediction.verdict == Verdict.TOO_LARGE and confirm and self.confirm_large_loads:
            gpu = self.ctx.hardware.gpus[0].name if self.ctx.hardware and self.ctx.hardware.gpus else None
            answer = QMessageBox.warning(
                self, "This model may not fit",
                verdict_sentence(prediction, gpu_name=gpu) + "\n\nLoad it anyway?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            )  # fmt: skip
            if answer != QMessageBox.StandardButton.Yes:
                self.engine_status.setText("Not loaded.")
                self._abandon_pending()
                return
        has_template = bool(entry.info.chat_template)
        self.engine_status.setText(f"Loading {entry.info.name}…")
        self.load_button.setEnabled(False)
        self.reload_button.hide()
        self._loading = entry
        try:
            self.engine.load(
                entry.id, n_ctx=run.n_ctx, n_gpu_layers=gpu_layers, kv_type=run.kv_type, flash_attn=run.flash_attn,
                mmap=run.mmap, has_template=has_template,
                seed=None if self.seed.value() < 0 else self.seed.value(),
            )  # fmt: skip
        except EngineError as exc:
            self.ctx.notify(str(exc), "error")
            self._abandon_pending()
            return
        self.template_label.setText(
            "Chat template: the model's own (from its GGUF)" if has_template
            else "This model has no chat template: using ChatML, which may make answers worse"
        )  # fmt: skip

    def _loaded(self, info: dict) -> None:
        entry = getattr(self, "_loading", None)
        self.loaded_entry = entry
        self.n_ctx = info["n_ctx"]
        self.load_button.setEnabled(True)
        name = entry.info.name if entry else os.path.basename(info["path"])
        self.engine_status.setText(
            f"{name} loaded in {info['load_s']:.1f} s — {self.n_ctx:,} context"
            + (f", {self._prediction.n_gpu_layers} GPU layers" if self._prediction else "")
            + (f", {info['n_threads']} threads" if info.get("n_threads") else "")
        )
        self._update_gauge()
        self._update_buttons()
        self._loaded_fingerprint = getattr(self, "_loading_fingerprint", "")
        if entry is not None and self._prediction is not None:
            self._record_load(entry.id, info["log"], self._prediction)
        if self._pending_send is not None:
            pending, self._pending_send = self._pending_send, None
            self._start_answer(pending)

    def _record_load(self, path: str, log: str, prediction) -> None:
        """Learning from reality: keep llama.cpp's real buffers beside the prediction (all on the io
        thread: the load log is thousands of lines)."""
        settings = {"n_ctx": prediction.n_ctx, "kv_type": prediction.kv_type, "n_gpu_layers": prediction.n_gpu_layers}

        def record() -> None:
            import importlib.metadata

            buffers = parse_llama_log(log)
            MeasurementStore().record(
                MeasurementRecord(
                    fingerprint=model_fingerprint(path), model_path=path, settings=settings,
                    predicted={"weights_bytes": prediction.ram.weights_bytes + prediction.vram.weights_bytes,
                               "kv_cache_bytes": prediction.ram.kv_cache_bytes + prediction.vram.kv_cache_bytes,
                               "compute_bytes": prediction.ram.compute_bytes + prediction.vram.compute_bytes,
                               "output_bytes": prediction.ram.output_bytes},
                    measured={"weights_bytes": buffers.weights_bytes, "kv_cache_bytes": buffers.kv_cache_bytes,
                              "compute_bytes": buffers.compute_bytes, "output_bytes": buffers.output_bytes,
                              "buffers": buffers.to_dict()},
                    llama_cpp_version=importlib.metadata.version("llama-cpp-python"), created_at=time.time(),
                )
            )  # fmt: skip

        self.ctx.run_io(record, on_error=lambda exc: log.warning("could not record the load: %s", exc))

    # -- conversations -------------------------------------------------------------------------
    def refresh_list(self) -> None:
        """Reload the conversation list (read on the io thread)."""
        self.ctx.run_io(self.store.list, self.search.text().strip(), owner=self, on_result=self._fill_list,
                        on_error=self._says("Could not read the conversations"))  # fmt: skip

    def _says(self, what: str):
        """An error callback that tells the user ``what: the error``."""
        return lambda exc: self.ctx.notify(f"{what}: {exc}", "error")

    def _fill_list(self, rows) -> None:
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

    def new_conversation(self, *, keep_system: bool = False) -> None:
        self.conv = Conversation(id=None, title="New conversation")
        if not keep_system:
            self.system_edit.setText("")
        self.conv_list.clearSelection()
        self.render()
        self._update_buttons()
        self.input.setFocus()

    def _open_selected(self, item: QListWidgetItem | None, _prev=None) -> None:
        if item is None or self.engine.busy_request is not None:
            return
        self.ctx.run_io(self.store.load, item.data(Qt.ItemDataRole.UserRole), owner=self, on_result=self._opened,
                        on_error=self._says("Could not open the conversation"))  # fmt: skip

    def _opened(self, conv) -> None:
        if conv is not None and self.engine.busy_request is None:
            self.conv = conv
            self.system_edit.setText(conv.system_prompt)
            self.tokens_used = int(conv.settings.get("tokens_used", 0))
            self._update_gauge()
            self.render()
            self._update_buttons()
            self.conversation_opened.emit()

    def _rename(self) -> None:
        if self.conv is None or self.conv.id is None:
            return
        title, ok = QInputDialog.getText(self, "Rename conversation", "Title", text=self.conv.title)
        if ok and title.strip():
            self.conv.title = title.strip()
            self.ctx.run_io(self.store.rename, self.conv.id, self.conv.title, owner=self,
                            on_result=lambda _r: self.refresh_list())  # fmt: skip

    def _delete(self) -> None:
        if self.conv is None or self.conv.id is None:
            return
        answer = QMessageBox.question(
            self, "Delete conversation", f"Delete “{self.conv.title}”? This cannot be undone."
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.ctx.run_io(self.store.delete, self.conv.id, owner=self, on_result=lambda _r: self.refresh_list())
            self.conv = None
            self.render()
            self._update_buttons()

    def _export(self, kind: str) -> None:
        if self.conv is None or not self.conv.messages:
            return
        safe = re.sub(r"[^\w\- ]+", "", self.conv.title).strip() or "conversation"
        path, _ = QFileDialog.getSaveFileName(self, "Export conversation", f"{safe}.{kind}")
        if path:
            self.export_to(path, kind)

    def export_to(self, path: str, kind: str) -> None:
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
        import json

        def read() -> Conversation:
            with open(path, encoding="utf-8") as f:
                conv = from_json(json.load(f))
            self.store.save(conv)
            return conv

        self.ctx.run_io(read, owner=self, on_result=self._imported,
                        on_error=lambda exc: self.ctx.notify(f"Could not import {os.path.basename(path)}: {exc}",
                                                             "error"))  # fmt: skip

    def _imported(self, conv) -> None:
        self.conv = conv
        self.system_edit.setText(conv.system_prompt)
        self.refresh_list()
        self.render()
        self._update_buttons()

    def _system_changed(self) -> None:
        if self.conv is not None and self.conv.system_prompt != self.system_edit.text():
            self.conv.system_prompt = self.system_edit.text()
            self._save()

    def _save(self) -> None:
        if self.conv is None:
            return
        import copy

        conv = self.conv
        first = conv.id is None
        if first:
            conv.id = new_conversation_id()
            conv.created_at = time.time()
        snapshot = copy.deepcopy(conv)

        self.ctx.run_io(self.store.save, snapshot, owner=self,
                        on_result=(lambda _id: self.refresh_list()) if first else None,
                        on_error=self._says("Could not save the conversation"))  # fmt: skip

    # -- sending -------------------------------------------------------------------------------
    def sampling(self) -> Sampling:
        return Sampling(
            temperature=self.temperature.value(), top_p=self.top_p.value(), top_k=self.top_k.value(),
            min_p=self.min_p.value(), repeat_penalty=self.repeat_penalty.value(), max_tokens=self.max_tokens.value(),
            seed=None if self.seed.value() < 0 else self.seed.value(),
        )  # fmt: skip

    def _apply_preset(self, name: str) -> None:
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

    def send(self) -> None:
        text = self.input.toPlainText().strip()
        if not text or self.engine.busy_request is not None:
            return
        if self.conv is None:
            self.new_conversation(keep_system=True)
        if self._editing is not None:  # edit and resend: the conversation continues from the edited message
            del self.conv.messages[self._editing :]
            self._editing = None
        if self.n_ctx and self.tokens_used + len(text) // 3 + self.max_tokens.value() > self.n_ctx:
            self.ctx.notify(
                f"This conversation has used {self.tokens_used:,} of {self.n_ctx:,} tokens of context and the next "
                "answer would not fit. Start a new conversation, or lower Max tokens.",
                "warning",
            )
            return
        self.conv.messages.append(Message("user", [text]))
        if self.conv.title == "New conversation":
            self.conv.title = text.splitlines()[0][:60]
        self.conv.system_prompt = self.system_edit.text()
        self.input.clear()
        self._start_answer(self.conv.chat_messages(), new_message=True)

    def regenerate(self) -> None:
        """Answer the last question again, keeping the earlier answers to flip between."""
        if self.conv is None or self.engine.busy_request is not None or not self.conv.messages:
            return
        if self.conv.messages[-1].role == "assistant":
            last = self.conv.messages[-1]
            history = Conversation(None, "", self.conv.system_prompt, messages=self.conv.messages[:-1])
            last.variants.append("")
            last.stats.append({})
            last.chosen = len(last.variants) - 1
            self._answer_index = len(self.conv.messages) - 1
            self._begin(history.chat_messages())
        else:
            self._start_answer(self.conv.chat_messages(), new_message=True)

    def _start_answer(self, messages: list[dict[str, str]], new_message: bool = False) -> None:
        if new_message:
            self.conv.messages.append(Message("assistant", [""], 0, [{}]))
            self._answer_index = len(self.conv.messages) - 1
        self._save()
        self.render()
        if not self.engine.model_loaded:
            self._pending_send = messages
            if not self.load_selected():
                self._abandon_pending()
            return
        self._begin(messages)

    def _begin(self, messages: list[dict[str, str]]) -> None:
        if self.loaded_entry is not None:
            e = self.loaded_entry
            self.conv.model_path, self.conv.quant = e.id, e.info.quant
            self.conv.llama_cpp_version = _llama_version()
            self.conv.settings.update({"n_ctx": self.n_ctx, **self.sampling().__dict__})
            self.conv.model_fingerprint = getattr(self, "_loaded_fingerprint", "")
        try:
            self._request = self.engine.chat(messages, self.sampling())
        except EngineError as exc:
            self.ctx.notify(str(exc), "error")
            return
        self._last_save = time.monotonic()
        self._update_buttons()

    def stop(self) -> None:
        if self.engine.busy_request is not None:
            self.engine.stop()

    def _token(self, rid: int, text: str) -> None:
        if rid != self._request or self.conv is None or self._answer_index is None:
            return
        msg = self.conv.messages[self._answer_index]
        msg.variants[msg.chosen] += text
        if not self._render_timer.isActive():
            self._render_timer.start()
        if time.monotonic() - self._last_save > SAVE_INTERVAL_S:  # crash-safe: written while streaming
            self._last_save = time.monotonic()
            self._save()

    def _finished(self, rid: int, stats: dict) -> None:
        if rid != self._request or self.conv is None or self._answer_index is None:
            return
        msg = self.conv.messages[self._answer_index]
        while len(msg.stats) < len(msg.variants):
            msg.stats.append({})
        msg.stats[msg.chosen] = stats
        self.tokens_used = stats["prompt_tokens"] + stats["completion_tokens"]
        self.conv.settings["tokens_used"] = self.tokens_used
        self._request = None
        self._answer_index = None
        self._save()
        self.render()
        self._update_gauge()
        self._update_buttons()
        self.answer_finished.emit()

    def _failed(self, rid, message: str) -> None:
        if rid is None:  # a load (or other request without an id) failed
            self.load_button.setEnabled(True)
            self.engine_status.setText("The model could not be loaded.")
            self._pending_send = None  # the question stays in the conversation: Regenerate answers it
        if "exceed context window" in message:
            message = (f"The conversation no longer fits in the {self.n_ctx:,}-token context. Start a new "
                       "conversation (or reload the model with a longer context).")  # fmt: skip
        self.ctx.notify(message, "error")
        self._request = None
        self._answer_index = None
        self._update_buttons()
        self.answer_finished.emit()

    def _died(self, message: str) -> None:
        self.loaded_entry = None
        self._pending_send = None
        self._request = None
        self._answer_index = None
        self.load_button.setEnabled(True)
        self.engine_status.setText("The engine stopped.")
        self.reload_button.show()
        self.ctx.notify(message + " Your conversation is saved; reload the model to go on.", "error")
        self._save()
        self.render()
        self._update_gauge()
        self._update_buttons()
        self.answer_finished.emit()

    # -- view ----------------------------------------------------------------------------------
    def render(self) -> None:
        if self.conv is None or not self.conv.messages:
            self.transcript.setHtml("")
            return
        parts = []
        for i, m in enumerate(self.conv.messages):
            who = "You" if m.role == "user" else "Assistant"
            links = ""
            if m.role == "user":
                links = f' &nbsp; <a href="edit:{i}">Edit</a>'
            elif len(m.variants) > 1:
                links = (f' &nbsp; <a href="prev:{i}">◀</a> {m.chosen + 1}/{len(m.variants)} '
                         f'<a href="next:{i}">▶</a>')  # fmt: skip
            code_bg = self.palette().alternateBase().color().name()
            body = render_markdown(m.content, i, code_bg) if m.content else "<p><i>…</i></p>"
            st = m.stat
            foot = ""
            if m.role == "assistant" and st:
                foot = (f'<p style="color:gray; font-size:small">{st.get("completion_tokens", 0)} tokens · '
                        f'{st.get("tokens_per_s", 0):.1f} tokens/s · first token after {st.get("ttft_s", 0):.2f} s'
                        + (" · stopped" if st.get("stopped") else "") + "</p>")  # fmt: skip
            parts.append(f"<h4>{who}{links}</h4>{body}{foot}<hr/>")
        self.transcript.setHtml("".join(parts))
        bar = self.transcript.verticalScrollBar()
        bar.setValue(bar.maximum())

    def _link(self, url: QUrl) -> None:
        kind, _, rest = url.toString().partition(":")
        if self.conv is None:
            return
        if kind == "copy":
            i, n = (int(x) for x in rest.split(":"))
            blocks = code_blocks(self.conv.messages[i].content)
            if n < len(blocks):
                QGuiApplication.clipboard().setText(blocks[n])
                self.ctx.notify("Code copied to the clipboard.")
        elif kind in ("prev", "next") and self.engine.busy_request is None:
            m = self.conv.messages[int(rest)]
            m.chosen = (m.chosen + (1 if kind == "next" else -1)) % len(m.variants)
            self._save()
            self.render()
        elif kind == "edit" and self.engine.busy_request is None:
            i = int(rest)
            self.input.setPlainText(self.conv.messages[i].content)
            self._editing = i
            self.input.setFocus()
            self.ctx.notify("Edit the message and press Enter: the conversation continues from there.")

    def _update_gauge(self) -> None:
        if not self.n_ctx:
            self.gauge.setRange(0, 1)
            self.gauge.setValue(0)
            self.gauge.setFormat("Context: no model loaded")
            return
        self.gauge.setRange(0, self.n_ctx)
        self.gauge.setValue(min(self.tokens_used, self.n_ctx))
        self.gauge.setFormat(f"Context: {self.tokens_used:,} of {self.n_ctx:,} tokens used")

    def _update_buttons(self) -> None:
        busy = self.engine.busy_request is not None
        self.stop_button.setEnabled(busy)
        self.send_button.setEnabled(not busy and self.model_combo.count() > 0)
        has_msgs = bool(self.conv and self.conv.messages)
        self.regenerate_button.setEnabled(not busy and has_msgs)
        for b in (self.rename_button, self.delete_button, self.export_md_button, self.export_json_button):
            b.setEnabled(bool(self.conv and self.conv.id is not None))

    def shutdown(self) -> None:
        """On quit: stop the answer, save what was written, stop the engine."""
        for signal in (self.engine.loaded, self.engine.token, self.engine.finished, self.engine.failed,
                       self.engine.died):  # fmt: skip
            signal.disconnect()
        self.stop()
        if self.conv is not None and self.conv.messages:
            import copy

            self.ctx.run_io(self.store.save, copy.deepcopy(self.conv))  # after any save already queued
        self.engine.shutdown()
        self.ctx.run_io(self.store.close)

    def busy(self) -> bool:
        return self.engine.busy_request is not None


def _llama_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("llama-cpp-python")
    except importlib.metadata.PackageNotFoundError:
        return ""
