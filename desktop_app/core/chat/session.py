"""One conversation's rules, without Qt: what sending, regenerating, editing and choosing between
answers do to the messages; the title; the context budget; and how the engine's stream lands in
the answer being written.

The Chat page (``ui/pages/chat/``) shows a :class:`ChatSession` and hands it the user's actions
and the engine's events; the rules run in tests without a window or a model. The context budget
is counted by the model's tokenizer where the prompt is built (the engine child, see
``Engine.chat(reserve=...)``): a turn the context cannot hold comes back as
:meth:`ChatSession.refused`, which puts the conversation back as it was.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from desktop_app.core.chat.store import Conversation, Message, new_conversation_id

NEW_TITLE = "New conversation"
TITLE_CHARS = 60
SAVE_INTERVAL_S = 1.0  # an answer being streamed is written at most this often (crash-safe, not per token)


@dataclass
class ModelStamp:
    """Where the answers come from: written into the conversation when an answer starts."""

    path: str
    quant: str
    fingerprint: str
    llama_cpp_version: str
    settings: dict[str, Any] = field(default_factory=dict)  # n_ctx and the sampling used


@dataclass
class _Turn:
    """An answer being written: where its text goes, and the conversation as it was before the turn
    (put back if the engine refuses it), with the text the user typed."""

    index: int
    before: list[Message]
    typed: str | None  # the user's new message, None for a regenerated answer
    editing: int | None
    request: int | None = None


class ChatSession:
    """The open conversation and the answer being written into it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.conv: Conversation | None = None
        self.n_ctx = 0  # of the loaded model; 0 when none is loaded
        self.tokens_used = 0  # prompt + answer tokens of the last answer, as the tokenizer counted them
        self.editing: int | None = None  # the user message being edited, resent from there
        self._turn: _Turn | None = None
        self._clock = clock
        self._last_save = 0.0

    # -- the conversation ----------------------------------------------------------------------
    def new(self, system_prompt: str = "") -> Conversation:
        self.conv = Conversation(id=None, title=NEW_TITLE, system_prompt=system_prompt)
        self.editing = None
        self.tokens_used = 0
        return self.conv

    def open(self, conv: Conversation) -> bool:
        """Show a saved conversation; refused (False) while an answer is being written."""
        if self.answering:
            return False
        self.conv = conv
        self.editing = None
        self.tokens_used = int(conv.settings.get("tokens_used", 0))
        return True

    def close(self) -> None:
        """The conversation was deleted."""
        self.conv = None
        self.editing = None
        self._turn = None

    def set_system_prompt(self, text: str) -> bool:
        """True when it changed (and the conversation should be saved)."""
        if self.conv is None or self.conv.system_prompt == text:
            return False
        self.conv.system_prompt = text
        return True

    def snapshot(self) -> tuple[Conversation, bool] | None:
        """A copy to write on another thread, and whether it is the first write (the conversation
        gets its id and creation time here, so every write can be off the GUI thread)."""
        if self.conv is None:
            return None
        first = self.conv.id is None
        if first:
            self.conv.id = new_conversation_id()
            self.conv.created_at = time.time()
        self._last_save = self._clock()
        return copy.deepcopy(self.conv), first

    # -- turns ---------------------------------------------------------------------------------
    @property
    def answering(self) -> bool:
        return self._turn is not None

    @property
    def answer_index(self) -> int | None:
        return self._turn.index if self._turn else None

    def send(self, text: str, system_prompt: str = "") -> list[dict[str, str]] | None:
        """The user's new message (or the edited one, which drops what followed it). Returns the
        messages to ask the engine to answer, or None when there is nothing to send."""
        text = text.strip()
        if not text or self.answering:
            return None
        if self.conv is None:
            self.new(system_prompt)
        conv = self.conv
        assert conv is not None
        before = copy.deepcopy(conv.messages)
        editing, self.editing = self.editing, None
        if editing is not None:
            del conv.messages[editing:]
        conv.messages.append(Message("user", [text]))
        if conv.title == NEW_TITLE:
            conv.title = text.splitlines()[0][:TITLE_CHARS]
        conv.system_prompt = system_prompt
        conv.messages.append(Message("assistant", [""], 0, [{}]))
        self._turn = _Turn(len(conv.messages) - 1, before, text, editing)
        return conv.chat_messages()

    def regenerate(self) -> list[dict[str, str]] | None:
        """Answer the last question again, keeping the earlier answers to flip between; a question
        left without an answer (a failed load, a stopped engine) is answered."""
        conv = self.conv
        if conv is None or self.answering or not conv.messages:
            return None
        before = copy.deepcopy(conv.messages)
        last = conv.messages[-1]
        if last.role == "assistant":
            asked = Conversation(None, "", conv.system_prompt, messages=conv.messages[:-1]).chat_messages()
            last.variants.append("")
            last.stats.append({})
            last.chosen = len(last.variants) - 1
        else:
            asked = conv.chat_messages()
            conv.messages.append(Message("assistant", [""], 0, [{}]))
        self._turn = _Turn(len(conv.messages) - 1, before, None, None)
        return asked

    def start_edit(self, index: int) -> str | None:
        """Edit a user message: returns its text for the input; the next send continues from it."""
        if self.conv is None or self.answering or not 0 <= index < len(self.conv.messages):
            return None
        if self.conv.messages[index].role != "user":
            return None
        self.editing = index
        return self.conv.messages[index].content

    def choose(self, index: int, step: int) -> bool:
        """Show the previous (-1) or next (+1) of a message's answers; True when it changed."""
        if self.conv is None or self.answering or not 0 <= index < len(self.conv.messages):
            return False
        m = self.conv.messages[index]
        if len(m.variants) < 2:
            return False
        m.chosen = (m.chosen + step) % len(m.variants)
        return True

    def begin(self, request: int, stamp: ModelStamp | None) -> None:
        """The engine took the turn as ``request``; the conversation records the model answering."""
        if self._turn is None or self.conv is None:
            return
        self._turn.request = request
        if stamp is not None:
            self.conv.model_path, self.conv.quant = stamp.path, stamp.quant
            self.conv.model_fingerprint = stamp.fingerprint
            self.conv.llama_cpp_version = stamp.llama_cpp_version
            self.conv.settings.update(stamp.settings)
        self._last_save = self._clock()

    def abandon(self) -> None:
        """The turn will not be answered (the model did not load): the question stays, so
        Regenerate can answer it; the empty answer goes."""
        turn, self._turn = self._turn, None
        if turn is None or self.conv is None:
            return
        msg = self.conv.messages[turn.index]
        if not msg.variants[msg.chosen]:
            if len(msg.variants) == 1:
                del self.conv.messages[turn.index]
            else:
                del msg.variants[msg.chosen]
                del msg.stats[msg.chosen : msg.chosen + 1]
                msg.chosen = len(msg.variants) - 1

    # -- the engine's stream -------------------------------------------------------------------
    def _ours(self, request: int | None) -> _Turn | None:
        turn = self._turn
        return turn if turn is not None and turn.request == request and self.conv is not None else None

    def add_text(self, request: int, text: str) -> bool:
        """A piece of the answer. True when the answer should be written now (at most every
        SAVE_INTERVAL_S, so a crash loses at most that much)."""
        turn = self._ours(request)
        if turn is None or self.conv is None:
            return False
        msg = self.conv.messages[turn.index]
        msg.variants[msg.chosen] += text
        return self._clock() - self._last_save > SAVE_INTERVAL_S

    def finish(self, request: int, stats: dict[str, Any]) -> bool:
        """The answer is complete (or stopped): its figures are kept with it. True when it was ours."""
        turn = self._ours(request)
        if turn is None or self.conv is None:
            return False
        msg = self.conv.messages[turn.index]
        while len(msg.stats) < len(msg.variants):
            msg.stats.append({})
        msg.stats[msg.chosen] = stats
        self.tokens_used = int(stats.get("prompt_tokens", 0)) + int(stats.get("completion_tokens", 0))
        self.conv.settings["tokens_used"] = self.tokens_used
        self._turn = None
        return True

    def fail(self, request: int | None, message: str) -> str:
        """The answer ended with an error: what was written stays. Returns what to tell the user."""
        if request is None or self._ours(request) is not None:
            self._turn = None
        if "exceed context window" in message:  # llama-cpp-python's words for a prompt over the context
            return (f"The conversation no longer fits in the {self.n_ctx:,}-token context. Start a new "
                    "conversation (or reload the model with a longer context).")  # fmt: skip
        return message

    def refused(self, request: int | None, prompt_tokens: int, reserve: int) -> tuple[str, str]:
        """The engine counted the prompt and the context cannot hold it and ``reserve`` more tokens:
        the conversation goes back to how it was. Returns (what to tell the user, the text to put
        back in the input: nothing typed is lost)."""
        turn = self._ours(request)
        if turn is None or self.conv is None:
            return "", ""
        self._turn = None
        self.conv.messages = turn.before
        self.editing = turn.editing
        message = (
            f"The next answer would not fit: the conversation is {prompt_tokens:,} tokens, and with up to "
            f"{reserve:,} for the answer that is more than the {self.n_ctx:,}-token context. Start a new "
            "conversation, or lower Max tokens."
        )
        return message, turn.typed or ""

    def engine_died(self) -> None:
        """The engine stopped mid-answer: what was written stays in the conversation."""
        self._turn = None
