"""The conversation as HTML, with its links: Copy code, Edit a question, flip between answers."""

from __future__ import annotations

import html
import re

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QGuiApplication, QTextCursor, QTextDocument, QTextDocumentFragment
from PySide6.QtWidgets import QTextBrowser, QWidget

from desktop_app.core.chat.store import Conversation
from desktop_app.ui.markdown_html import to_html

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


def _footer(stat: dict) -> str:
    if not stat:
        return ""
    return (f'<p style="color:gray; font-size:small">{stat.get("completion_tokens", 0)} tokens · '
            f'{stat.get("tokens_per_s", 0):.1f} tokens/s · first token after {stat.get("ttft_s", 0):.2f} s'
            + (" · stopped" if stat.get("stopped") else "") + "</p>")  # fmt: skip


class Transcript(QTextBrowser):
    """Shows a conversation; its links become signals (copying a code block is done here)."""

    edit_requested = Signal(int)  # message index
    choose_requested = Signal(int, int)  # message index, -1 previous / +1 next answer
    copied = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setPlaceholderText("Pick a model, load it, and say hello.")
        self.anchorClicked.connect(self.follow)
        self._conv: Conversation | None = None
        self._parts: dict[tuple, str] = {}  # each message's HTML, by what it shows
        self._head: list[str] | None = None  # the HTML of every message but the last, as shown
        self._tail_at: int | None = None  # where the last message starts in the document

    def show_conversation(self, conv: Conversation | None) -> None:
        """Show ``conv``. While an answer streams only its last message changes: then only that
        message is parsed, laid out and painted again. Re-rendering the whole conversation every
        frame cost 7 ms at one turn and 47 ms at forty, taken from llama.cpp's threads on a
        2-core machine (the answer streamed about 10 % slower in the window than without it)."""
        self._conv = conv
        if conv is None or not conv.messages:
            self._head, self._tail_at = None, None
            self.setHtml("")
            return
        code_bg = self.palette().alternateBase().color().name()
        cache: dict[tuple, str] = {}
        parts = []
        for i, m in enumerate(conv.messages):
            key = (i, m.role, m.content, m.chosen, len(m.variants), repr(m.stat), code_bg)
            parts.append(cache.setdefault(key, self._parts.get(key) or self._message_html(i, m, code_bg)))
        self._parts = cache
        head, tail = parts[:-1], parts[-1]
        if not head:
            self._head, self._tail_at = None, None
            self.setHtml(tail)
        elif head == self._head and self._tail_at is not None:
            self._put_tail(tail)
        else:
            self.setHtml("".join(head))
            cursor = QTextCursor(self.document())
            cursor.movePosition(QTextCursor.MoveOperation.End)
            cursor.insertBlock()
            self._head, self._tail_at = head, cursor.position()
            self._put_tail(tail)
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

    @staticmethod
    def _message_html(i: int, m, code_bg: str) -> str:
        who = "You" if m.role == "user" else "Assistant"
        links = ""
        if m.role == "user":
            links = f' &nbsp; <a href="edit:{i}">Edit</a>'
        elif len(m.variants) > 1:
            links = (f' &nbsp; <a href="prev:{i}">◀</a> {m.chosen + 1}/{len(m.variants)} '
                     f'<a href="next:{i}">▶</a>')  # fmt: skip
        body = render_markdown(m.content, i, code_bg) if m.content else "<p><i>…</i></p>"
        foot = _footer(m.stat) if m.role == "assistant" else ""
        return f"<h4>{who}{links}</h4>{body}{foot}<hr/>"

    def _put_tail(self, tail: str) -> None:
        """Replace everything from the last message's first block on with ``tail``, parsed on its own
        and inserted as a fragment. The block it lands in takes the fragment's first block format
        first (an insertion keeps the format of the block it lands in, which would lose the
        heading's margin): the page then looks exactly as if set whole."""
        part = QTextDocument()
        part.setDefaultFont(self.document().defaultFont())
        part.setHtml(tail)
        first = part.firstBlock()
        cursor = QTextCursor(self.document())
        cursor.beginEditBlock()
        cursor.setPosition(self._tail_at)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()
        cursor.setBlockFormat(first.blockFormat())
        cursor.setBlockCharFormat(first.charFormat())
        cursor.insertFragment(QTextDocumentFragment(part))
        cursor.endEditBlock()

    def follow(self, url: QUrl | str) -> None:
        """A link in the transcript: ``copy:<message>:<block>``, ``edit:<message>``, ``prev:``/``next:``."""
        kind, _, rest = (url.toString() if isinstance(url, QUrl) else url).partition(":")
        try:
            numbers = [int(x) for x in rest.split(":")]
        except ValueError:
            return
        if kind == "copy" and len(numbers) == 2 and self._conv is not None:
            i, n = numbers
            blocks = code_blocks(self._conv.messages[i].content) if 0 <= i < len(self._conv.messages) else []
            if 0 <= n < len(blocks):
                QGuiApplication.clipboard().setText(blocks[n])
                self.copied.emit()
        elif kind in ("prev", "next") and len(numbers) == 1:
            self.choose_requested.emit(numbers[0], 1 if kind == "next" else -1)
        elif kind == "edit" and len(numbers) == 1:
            self.edit_requested.emit(numbers[0])
