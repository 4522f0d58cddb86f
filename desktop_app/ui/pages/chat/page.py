"""Chat: talk to a local model through the engine child process, with conversations saved as you go.

The page wires its views (conversation list, transcript, settings panel) to a Qt-free
:class:`ChatSession`, which holds the rules, and to the engine; it also checks that a model fits
before loading it.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.chat.session import ChatSession, ModelStamp
from desktop_app.core.chat.store import ChatStore, Conversation
from desktop_app.core.engine import EngineError
from desktop_app.core.runtime.backends import llama_cpp_version
from desktop_app.ui.context import AppContext
from desktop_app.ui.engine_client import EngineClient
from desktop_app.ui.markdown_html import warm_up
from desktop_app.ui.pages.chat.conversations import ConversationsPanel
from desktop_app.ui.pages.chat.model_bar import ModelBar
from desktop_app.ui.pages.chat.settings_panel import ChatSettingsPanel
from desktop_app.ui.pages.chat.transcript import Transcript

RENDER_INTERVAL_MS = 50  # coalesce streamed tokens into one repaint: 20 a second at most
RENDER_MAX_INTERVAL_MS = 250
# While an answer streams, its redraws may take this share of one core and no more: on a small
# machine the window's CPU is taken from llama.cpp's threads. A redraw that costs more (a long
# answer full of markdown) makes the next one come later, up to RENDER_MAX_INTERVAL_MS.
RENDER_CPU_SHARE = 0.05


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
        self.session = ChatSession()
        self.engine = EngineClient(self)
        self._pending: list[dict[str, str]] | None = None  # messages to answer once the model has loaded
        self.conversations = ConversationsPanel(ctx, self.store)
        self.settings_panel = ChatSettingsPanel()
        self.model_bar = ModelBar(ctx, self.engine, self.settings_panel.run_settings, self.settings_panel.chosen_seed)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.conversations)
        split.addWidget(self._conversation_column())
        split.addWidget(self.settings_panel)
        split.setSizes([230, 760, 230])
        outer = QHBoxLayout(self)
        outer.setContentsMargins(24, 20, 24, 12)
        outer.addWidget(split)
        self._wire()
        self.conversations.refresh()
        self._update_buttons()

    def _conversation_column(self) -> QWidget:
        mid = QWidget()
        ml = QVBoxLayout(mid)
        ml.setContentsMargins(8, 0, 8, 0)
        ml.addWidget(self.model_bar)
        self.gauge = QProgressBar()
        self.gauge.setTextVisible(True)
        self.gauge.setMaximumHeight(18)
        ml.addWidget(self.gauge)
        self.system_edit = QLineEdit()
        self.system_edit.setPlaceholderText("System prompt for this conversation (optional)")
        ml.addWidget(self.system_edit)
        self.transcript = Transcript()
        ml.addWidget(self.transcript, 1)
        self.reload_button = QPushButton("Reload the model")
        self.reload_button.hide()
        ml.addWidget(self.reload_button)
        self.input = QPlainTextEdit()
        self.input.setPlaceholderText("Message (Enter sends, Shift+Enter for a new line, Esc stops)")
        self.input.setMaximumHeight(110)
        ml.addWidget(self.input)
        row = QHBoxLayout()
        row.addStretch(1)
        self.regenerate_button = QPushButton("Regenerate")
        self.stop_button = QPushButton("Stop")
        self.send_button = QPushButton("Send")
        self.send_button.setDefault(True)
        for b in (self.regenerate_button, self.stop_button, self.send_button):
            row.addWidget(b)
        ml.addLayout(row)
        self._update_gauge()
        return mid

    def _wire(self) -> None:
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
        self.reload_button.clicked.connect(self.load_selected)
        self.model_bar.loaded.connect(self._model_ready)
        self.model_bar.not_loaded.connect(self._abandon_pending)
        self.system_edit.editingFinished.connect(self._system_changed)
        self.transcript.edit_requested.connect(self.edit_message)
        self.transcript.choose_requested.connect(self.choose_answer)
        self.transcript.copied.connect(lambda: self.ctx.notify("Code copied to the clipboard."))
        self.conversations.new_requested.connect(self.new_conversation)
        self.conversations.opened.connect(self._opened)
        self.conversations.imported.connect(self._imported)
        self.conversations.deleted.connect(self._deleted)
        self.conversations.list_refreshed.connect(self.list_refreshed)
        for signal, slot in ((self.engine.token, self._token),
                             (self.engine.finished, self._finished), (self.engine.failed, self._failed),
                             (self.engine.refused, self._refused), (self.engine.died, self._died)):  # fmt: skip
            signal.connect(slot)
        self.ctx.library_changed.connect(self._update_buttons)

    @property
    def conv(self) -> Conversation | None:
        return self.session.conv

    def load_selected(self, *, confirm: bool = True) -> bool:
        return self.model_bar.load_selected(confirm=confirm)

    def _abandon_pending(self) -> None:
        """A load that was to be followed by an answer will not happen: the question stays
        (Regenerate answers it), the answer ends here."""
        if self._pending is not None:
            self._pending = None
            self._unanswered()

    def _unanswered(self) -> None:
        """The turn will not be answered: the question stays (Regenerate answers it)."""
        self.session.abandon()
        self._save()
        self._after_answer()

    def _model_ready(self, info: dict) -> None:
        self.reload_button.hide()
        self.session.n_ctx = info["n_ctx"]
        self._update_gauge()
        self._update_buttons()
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._begin(pending)

    # -- conversations -------------------------------------------------------------------------
    def new_conversation(self, *, keep_system: bool = False) -> None:
        if self.session.answering:
            return
        if not keep_system:
            self.system_edit.setText("")
        self.session.new(self.system_edit.text())
        self._show_conversation()
        self.input.setFocus()

    def _opened(self, conv: Conversation) -> None:
        if self.session.open(conv):
            self.system_edit.setText(conv.system_prompt)
            self._show_conversation()
            self.conversation_opened.emit()

    def _imported(self, conv: Conversation) -> None:
        if self.session.open(conv):
            self.system_edit.setText(conv.system_prompt)
            self._show_conversation()
        self.conversations.refresh()

    def _deleted(self) -> None:
        self.session.close()
        self._show_conversation()

    def _show_conversation(self) -> None:
        self.conversations.show_current(self.session.conv)
        self._update_gauge()
        self.render()
        self._update_buttons()

    def _system_changed(self) -> None:
        if self.session.set_system_prompt(self.system_edit.text()):
            self._save()

    def _save(self) -> None:
        """Write the conversation on the io thread (a copy: the answer goes on growing here)."""
        snapshot = self.session.snapshot()
        if snapshot is None:
            return
        conv, first = snapshot
        self.ctx.run_io(self.store.save, conv, owner=self,
                        on_result=(lambda _id: self.conversations.refresh()) if first else None,
                        on_error=lambda exc: self.ctx.notify(f"Could not save the conversation: {exc}",
                                                             "error"))  # fmt: skip

    # -- the user's actions --------------------------------------------------------------------
    def send(self) -> None:
        if self.engine.busy_request is not None or self.session.answering:
            return
        messages = self.session.send(self.input.toPlainText(), self.system_edit.text())
        if messages is not None:
            self.input.clear()
            self._ask(messages)

    def regenerate(self) -> None:
        """Answer the last question again, keeping the earlier answers to flip between."""
        if self.engine.busy_request is not None:
            return
        messages = self.session.regenerate()
        if messages is not None:
            self._ask(messages)

    def edit_message(self, index: int) -> None:
        text = self.session.start_edit(index)
        if text is not None:
            self.input.setPlainText(text)
            self.input.setFocus()
            self.ctx.notify("Edit the message and press Enter: the conversation continues from there.")

    def choose_answer(self, index: int, step: int) -> None:
        if self.session.choose(index, step):
            self._save()
            self.render()

    def stop(self) -> None:
        if self.engine.busy_request is not None:
            self.engine.stop()

    def _ask(self, messages: list[dict[str, str]]) -> None:
        self._save()
        self._show_conversation()
        if not self.engine.model_loaded:
            self._pending = messages
            if not self.load_selected():
                self._abandon_pending()
            return
        self._begin(messages)

    def _begin(self, messages: list[dict[str, str]]) -> None:
        sampling = self.settings_panel.sampling()
        e = self.model_bar.loaded_entry
        stamp = None
        if e is not None:
            stamp = ModelStamp(e.id, e.info.quant, self.model_bar.fingerprint, llama_cpp_version() or "",
                               {"n_ctx": self.session.n_ctx, **sampling.__dict__})  # fmt: skip
        try:
            request = self.engine.chat(messages, sampling, reserve_answer=True)
        except EngineError as exc:
            self.ctx.notify(str(exc), "error")
            self._unanswered()
            return
        self.session.begin(request, stamp)
        self._update_buttons()

    # -- the engine's events -------------------------------------------------------------------
    def _token(self, rid: int, text: str) -> None:
        if self.session.add_text(rid, text):
            self._save()  # crash-safe: written while streaming, at most every SAVE_INTERVAL_S
        if not self._render_timer.isActive():
            self._render_timer.start()

    def _finished(self, rid: int, stats: dict) -> None:
        if self.session.finish(rid, stats):
            self._save()
            self._after_answer()

    def _failed(self, rid, message: str) -> None:
        if rid is None:  # a load (or another request without an id) failed
            self.model_bar.load_failed()
        self.ctx.notify(self.session.fail(rid, message), "error")
        self._after_answer()

    def _refused(self, rid, room: dict) -> None:
        """The engine counted the turn and the context cannot hold it: nothing is lost."""
        message, typed = self.session.refused(rid, int(room.get("prompt_tokens", 0)), int(room.get("reserve", 0)))
        if not message:
            return
        if typed and not self.input.toPlainText().strip():
            self.input.setPlainText(typed)
        self.ctx.notify(message, "warning")
        self._save()
        self._after_answer()

    def _died(self, message: str) -> None:
        self.session.engine_died()
        self.model_bar.engine_died()
        self._pending = None
        self.reload_button.show()
        self.ctx.notify(message + " Your conversation is saved; reload the model to go on.", "error")
        self._save()
        self._after_answer()

    def _after_answer(self) -> None:
        self._show_conversation()
        self.answer_finished.emit()

    # -- view ----------------------------------------------------------------------------------
    def render(self) -> None:
        started = time.perf_counter()
        self.transcript.show_conversation(self.session.conv)
        cost_ms = (time.perf_counter() - started) * 1000
        interval = min(RENDER_MAX_INTERVAL_MS, max(RENDER_INTERVAL_MS, cost_ms / RENDER_CPU_SHARE))
        self._render_timer.setInterval(round(interval))

    def _update_gauge(self) -> None:
        n_ctx, used = self.session.n_ctx, self.session.tokens_used
        if not n_ctx:
            self.gauge.setRange(0, 1)
            self.gauge.setValue(0)
            self.gauge.setFormat("Context: no model loaded")
            return
        self.gauge.setRange(0, n_ctx)
        self.gauge.setValue(min(used, n_ctx))
        self.gauge.setFormat(f"Context: {used:,} of {n_ctx:,} tokens used")

    def _update_buttons(self) -> None:
        busy = self.engine.busy_request is not None
        self.stop_button.setEnabled(busy)
        self.send_button.setEnabled(not busy and self.model_bar.combo.count() > 0)
        conv = self.session.conv
        self.regenerate_button.setEnabled(not busy and bool(conv and conv.messages))

    def shutdown(self) -> None:
        """On quit: stop the answer, save what was written, stop the engine."""
        for signal in (self.engine.loaded, self.engine.token, self.engine.finished, self.engine.failed,
                       self.engine.refused, self.engine.died):  # fmt: skip
            signal.disconnect()
        self.stop()
        if self.session.conv is not None and self.session.conv.messages:
            snapshot = self.session.snapshot()
            if snapshot is not None:
                self.ctx.run_io(self.store.save, snapshot[0])  # after any save already queued
        self.engine.shutdown()
        self.ctx.run_io(self.store.close)

    def busy(self) -> bool:
        return self.engine.busy_request is not None
