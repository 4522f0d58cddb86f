"""The conversation as HTML, with its links: Copy code, Edit a question, flip between answers."""

from __future__ import annotations

import html
import re

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QGuiApplication
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

    def show_conversation(self, conv: Conversation | None) -> None:
        self._conv = conv
        if conv is None or not conv.messages:
            self.setHtml("")
            return
        code_bg = self.palette().alternateBase().color().name()
        parts = []
        for i, m in enumerate(conv.messages):
            who = "You" if m.role == "user" else "Assistant"
            links = ""
            if m.role == "user":
                links = f' &nbsp; <a href="edit:{i}">Edit</a>'
            elif len(m.variants) > 1:
                links = (f' &nbsp; <a href="prev:{i}">◀</a> {m.chosen + 1}/{len(m.variants)} '
                         f'<a href="next:{i}">▶</a>')  # fmt: skip
            body = render_markdown(m.content, i, code_bg) if m.content else "<p><i>…</i></p>"
            foot = _footer(m.stat) if m.role == "assistant" else ""
            parts.append(f"<h4>{who}{links}</h4>{body}{foot}<hr/>")
        self.setHtml("".join(parts))
        bar = self.verticalScrollBar()
        bar.setValue(bar.maximum())

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
