"""The window starts on damaged files and folders it cannot write, says so, and loses nothing."""

from __future__ import annotations

import os

import pytest

from desktop_app.core.chat.store import ChatStore, Conversation, Message
from desktop_app.core.paths import app_paths


@pytest.fixture
def shown(monkeypatch) -> list[str]:
    """Every message the window shows the user, from the first one at start-up."""
    from desktop_app.ui.context import AppContext

    texts: list[str] = []
    original = AppContext.notify

    def notify(self, text, level="info"):
        texts.append(text)
        original(self, text, level)

    monkeypatch.setattr(AppContext, "notify", notify)
    return texts


def test_the_window_starts_on_a_damaged_store_and_settings(make_window, qtbot, shown):
    paths = app_paths().ensure()
    store = paths.data_dir / "conversations.sqlite3"
    store.write_bytes(os.urandom(64 * 1024))
    paths.settings_file.write_text('{"model_folders": "/srv/models", "n_ctx": Infinity, "x": [[[[1e400]]]]}')
    w = make_window()
    page = w.chat_page
    qtbot.waitUntil(lambda: any("conversation" in t.lower() for t in shown), timeout=30_000)
    text = "\n".join(shown)
    assert "settings" in text.lower()
    assert "/srv/models" in w.ctx.settings.model_folders  # the folder written as a string is kept
    assert any(p.name.startswith("conversations.sqlite3.damaged") for p in paths.data_dir.iterdir())
    assert any(p.name.startswith("settings.json.") for p in paths.settings_file.parent.iterdir())
    # and the fresh store works: a conversation is kept on disk
    cid = page.store.save(Conversation(None, "after the damage", messages=[Message("user", ["still here?"])]))
    assert ChatStore(store).load(cid).title == "after the damage"


def test_the_window_starts_when_its_data_folder_cannot_be_made(make_window, qtbot, tmp_path, monkeypatch, shown):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("QUANTDESK_DATA_DIR", str(blocker / "quantdesk"))  # root ignores permissions; this cannot
    w = make_window()
    assert w.isVisible()
    assert any("cannot create its folders" in t for t in shown)
    assert w.ctx.hardware is not None  # the hardware look and the library scan still ran
    page = w.chat_page
    page.new_conversation()  # kept in memory; the page says conversations are not saved
    qtbot.waitUntil(lambda: any("only until QuantDesk closes" in t for t in shown), timeout=30_000)
