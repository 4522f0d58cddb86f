"""The Chat page with the real starter model in the real engine child process."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt, QUrl

from desktop_app.core.chat.store import ChatStore

TIMEOUT = 60_000


def _saved(conv_id: int):
    store = ChatStore()
    try:
        return store.load(conv_id)
    finally:
        store.close()


def _page(make_window):
    w = make_window()
    page = w.chat_page
    page.settings_panel.preset.setCurrentText("Precise")
    page.settings_panel.max_tokens.setValue(24)
    return w, page


def _ask(qtbot, page, text: str) -> None:
    page.input.setPlainText(text)
    with qtbot.waitSignal(page.answer_finished, timeout=TIMEOUT):
        qtbot.keyClick(page.input, Qt.Key.Key_Return)


def test_first_message_loads_the_model_and_streams_an_answer(make_window, qtbot):
    _w, page = _page(make_window)
    tokens = []
    page.engine.token.connect(lambda _rid, t: tokens.append(t))
    _ask(qtbot, page, "Name three colors.")
    assert page.engine.model_loaded and "loaded" in page.model_bar.status.text()
    [user, answer] = page.conv.messages
    assert user.content == "Name three colors." and answer.content == "".join(tokens) and len(tokens) > 1
    st = answer.stat
    # tokens streamed close together travel in one message: at least as many tokens as messages
    assert st["completion_tokens"] >= len(tokens) and st["ttft_s"] > 0 and st["tokens_per_s"] > 0
    html = page.transcript.toHtml()
    assert "tokens/s" in html and "first token after" in html
    assert page.gauge.format().startswith(f"Context: {page.session.tokens_used:,} of 4,096")
    assert page.model_bar.template_label.text().startswith("Chat template: the model's own")
    # written to SQLite on the io thread, with the model it came from
    qtbot.waitUntil(lambda: _saved(page.conv.id).messages[1].content == answer.content, timeout=5000)
    saved = _saved(page.conv.id)
    assert saved.model_path.endswith("SmolLM2-135M-Instruct.Q4_1.gguf") and saved.quant == "Q4_1"
    assert saved.llama_cpp_version == "0.3.36" and saved.model_fingerprint


def test_shift_enter_is_a_new_line_and_escape_stops(make_window, qtbot):
    _w, page = _page(make_window)
    page.input.setPlainText("line one")
    page.input.moveCursor(page.input.textCursor().MoveOperation.End)
    qtbot.keyClick(page.input, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert page.input.toPlainText() == "line one\n" and page.conv is None
    page.settings_panel.max_tokens.setValue(400)
    page.settings_panel.preset.setCurrentText("Balanced")
    page.settings_panel.max_tokens.setValue(400)
    page.input.setPlainText("Tell a very long story about a dragon and a knight.")
    with qtbot.waitSignal(page.engine.token, timeout=TIMEOUT):
        qtbot.keyClick(page.input, Qt.Key.Key_Return)
    assert page.stop_button.isEnabled()
    with qtbot.waitSignal(page.answer_finished, timeout=TIMEOUT):
        qtbot.keyClick(page.input, Qt.Key.Key_Escape)
    answer = page.conv.messages[-1]
    assert answer.stat["stopped"] and answer.stat["completion_tokens"] < 400 and answer.content


def test_regenerate_keeps_earlier_answers_to_flip_between(make_window, qtbot):
    _w, page = _page(make_window)
    _ask(qtbot, page, "Say hello.")
    first = page.conv.messages[1].content
    page.settings_panel.preset.setCurrentText("Creative")
    page.settings_panel.max_tokens.setValue(24)
    page.settings_panel.seed.setValue(7)
    with qtbot.waitSignal(page.answer_finished, timeout=TIMEOUT):
        qtbot.mouseClick(page.regenerate_button, Qt.MouseButton.LeftButton)
    msg = page.conv.messages[1]
    assert len(page.conv.messages) == 2 and len(msg.variants) == 2 and msg.chosen == 1
    assert msg.variants[0] == first
    assert "2/2" in page.transcript.toPlainText()
    page.transcript.follow(QUrl("prev:1"))  # the ◀ link
    assert msg.chosen == 0 and msg.content == first


def test_edit_a_message_and_resend(make_window, qtbot):
    _w, page = _page(make_window)
    _ask(qtbot, page, "Name a fruit.")
    _ask(qtbot, page, "Name another.")
    assert len(page.conv.messages) == 4
    page.transcript.follow(QUrl("edit:0"))  # the Edit link
    assert page.input.toPlainText() == "Name a fruit."
    page.input.setPlainText("Name a vegetable.")
    with qtbot.waitSignal(page.answer_finished, timeout=TIMEOUT):
        page.send()
    assert [m.content for m in page.conv.messages[:1]] == ["Name a vegetable."]
    assert len(page.conv.messages) == 2


def test_conversations_survive_a_restart(make_window, qtbot):
    w, page = _page(make_window)
    page.system_edit.setText("Answer in one word.")
    _ask(qtbot, page, "What color is the sky?")
    cid, answer = page.conv.id, page.conv.messages[1].content
    w.close()
    w2 = make_window()
    page2 = w2.chat_page
    qtbot.waitUntil(lambda: page2.conversations.conv_list.count() > 0, timeout=5000)
    items = [page2.conversations.conv_list.item(i) for i in range(page2.conversations.conv_list.count())]
    [item] = [i for i in items if i.data(Qt.ItemDataRole.UserRole) == cid]
    assert item.text() == "What color is the sky?"
    with qtbot.waitSignal(page2.conversation_opened, timeout=5000):
        page2.conversations.conv_list.setCurrentItem(item)
    assert page2.conv.messages[1].content == answer
    assert page2.system_edit.text() == "Answer in one word."
    with qtbot.waitSignal(page2.list_refreshed, timeout=5000):
        page2.conversations.search.setText("sky")
    assert page2.conversations.conv_list.count() == 1


def test_killed_engine_keeps_the_window_and_the_words(make_window, qtbot):
    w, page = _page(make_window)
    page.settings_panel.max_tokens.setValue(400)
    page.settings_panel.preset.setCurrentText("Balanced")
    page.settings_panel.max_tokens.setValue(400)
    page.input.setPlainText("Tell a very long story about a dragon.")
    with qtbot.waitSignal(page.engine.token, timeout=TIMEOUT):
        page.send()
    qtbot.waitUntil(lambda: len(page.conv.messages[1].content) > 10, timeout=TIMEOUT)
    with qtbot.waitSignal(page.engine.died, timeout=TIMEOUT):
        page.engine.engine.kill()
    partial = page.conv.messages[1].content
    assert w.isVisible() and page.reload_button.isVisible()
    assert "SIGKILL" in w.messages.label.text() and "conversation is saved" in w.messages.label.text()
    qtbot.waitUntil(lambda: _saved(page.conv.id).messages[1].content == partial, timeout=5000)
    page.settings_panel.preset.setCurrentText("Precise")
    page.settings_panel.max_tokens.setValue(16)
    _ask(qtbot, page, "Go on.")  # sending reloads the model in a new child
    assert page.engine.model_loaded and len(page.conv.messages) == 4


def test_a_turn_that_would_not_fit_is_refused_and_loses_nothing(make_window, qtbot):
    w, page = _page(make_window)
    page.settings_panel.ctx_spin.setValue(256)
    _ask(qtbot, page, "Hi.")
    used = page.session.tokens_used
    assert page.gauge.format() == f"Context: {used:,} of 256 tokens used"
    page.settings_panel.max_tokens.setValue(256 - used)  # the next prompt is longer than the last one
    page.input.setPlainText("One more question?")
    with qtbot.waitSignal(page.answer_finished, timeout=TIMEOUT):
        page.send()
    assert "would not fit" in w.messages.label.text() and len(page.conv.messages) == 2
    assert page.input.toPlainText() == "One more question?"  # nothing typed is lost
    page.settings_panel.max_tokens.setValue(8)
    _ask(qtbot, page, "One more question?")  # with room for the answer it goes
    assert len(page.conv.messages) == 4 and 0 < page.conv.messages[3].stat["completion_tokens"] <= 8


def test_export_and_import(make_window, qtbot, tmp_path):
    w, page = _page(make_window)
    _ask(qtbot, page, "Name three colors.")
    md, js = tmp_path / "c.md", tmp_path / "c.json"
    page.conversations.export_to(str(md), "md")
    page.conversations.export_to(str(js), "json")
    qtbot.waitUntil(lambda: js.exists() and "Exported" in w.messages.label.text(), timeout=5000)
    assert "# Name three colors." in md.read_text() and "Q4_1" in md.read_text()
    data = json.loads(js.read_text())
    assert data["model"]["quant"] == "Q4_1" and data["messages"][1]["role"] == "assistant"
    qtbot.waitUntil(lambda: page.conversations.conv_list.count() == 1, timeout=5000)
    with qtbot.waitSignal(page.list_refreshed, timeout=5000):
        page.conversations.import_from(str(js))
    assert page.conversations.conv_list.count() == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"hello": 1}')
    page.conversations.import_from(str(bad))
    qtbot.waitUntil(lambda: "not a QuantDesk conversation" in w.messages.label.text(), timeout=5000)


def test_closing_mid_answer_keeps_what_was_written(make_window, qtbot):
    w, page = _page(make_window)
    page.settings_panel.preset.setCurrentText("Balanced")
    page.settings_panel.max_tokens.setValue(400)
    page.input.setPlainText("Tell a very long story about a dragon.")
    with qtbot.waitSignal(page.engine.token, timeout=TIMEOUT):
        page.send()
    qtbot.waitUntil(lambda: len(page.conv.messages[1].content) > 5, timeout=TIMEOUT)
    cid = page.conv.id
    w.close()  # waits for the io thread, which writes what was streamed
    saved = _saved(cid)
    assert saved.messages[0].content == "Tell a very long story about a dragon."
    assert len(saved.messages[1].content) > 5


def test_switching_models_mid_answer_and_a_broken_file(make_window, qtbot, tmp_path):
    from desktop_app.core.settings import Settings
    from tests.gguf_factory import write_gguf

    lib = tmp_path / "lib"
    lib.mkdir()
    broken = write_gguf(lib / "zeros-Q4_K_M.gguf", n_layers=1, arch="nosucharch")  # llama.cpp cannot load it
    w = make_window(settings=Settings(model_folders=[str(lib)]))
    page = w.chat_page
    page.settings_panel.preset.setCurrentText("Balanced")
    page.settings_panel.max_tokens.setValue(400)
    page.input.setPlainText("Tell a very long story about a dragon.")
    with qtbot.waitSignal(page.engine.token, timeout=TIMEOUT):
        page.send()
    page.model_bar.combo.setCurrentIndex(page.model_bar.combo.findData(str(broken)))
    with qtbot.waitSignal(page.engine.failed, timeout=TIMEOUT):
        page.load_selected(confirm=False)  # stops the answer, keeps it, then tries the other model
    answer = page.conv.messages[1]
    assert answer.content and answer.stat.get("stopped")
    assert "could not be loaded" in page.model_bar.status.text()
    assert w.messages.level == "error" and w.isVisible()


def test_load_settings_reach_llama_cpp(make_window, qtbot):
    _w, page = _page(make_window)
    page.settings_panel.ctx_spin.setValue(1024)
    page.settings_panel.kv_type_combo.setCurrentText("q8_0")
    with qtbot.waitSignal(page.engine.loaded, timeout=TIMEOUT) as blocker:
        page.load_selected()
    from desktop_app.core.memory.llama_log import parse_llama_log

    assert blocker.args[0]["n_ctx"] == 1024
    kv = parse_llama_log(blocker.args[0]["log"]).kv_cache_bytes  # logged in MiB with two decimals
    assert abs(kv - 1024 * 30 * 192 * 2 * 34 // 32) < 0.01 * 1024 * 1024
    assert "1,024 context" in page.model_bar.status.text()


def test_a_streaming_answer_redraws_only_itself_and_looks_as_if_drawn_whole(qtbot, monkeypatch):
    """While an answer streams, the transcript re-parses only the last message (a long chat must
    not take llama.cpp's CPU every frame), and the page looks pixel for pixel as a full render."""
    from desktop_app.core.chat.store import Conversation, Message
    from desktop_app.ui.pages.chat import transcript as tr

    answer = "Some words.\n\n```python\ndef add(a, b):\n    return a + b\n```\n\n1. one\n2. two\n\n# A heading\n"
    msgs = []
    for _ in range(5):
        msgs += [Message(role="user", variants=["Go on."]), Message(role="assistant", variants=[answer])]
    msgs += [Message(role="user", variants=["Last one."]), Message(role="assistant", variants=[""])]
    conv = Conversation(id=1, title="t", messages=msgs)
    streamed, whole = tr.Transcript(), tr.Transcript()
    for view in (streamed, whole):
        view.resize(480, 2400)
        qtbot.addWidget(view)
        view.show()
    streamed.show_conversation(conv)
    rendered, reset = [], []
    real = tr.Transcript._message_html
    counting = staticmethod(lambda i, m, bg: rendered.append(i) or real(i, m, bg))
    monkeypatch.setattr(tr.Transcript, "_message_html", counting)
    monkeypatch.setattr(streamed, "setHtml", lambda html: reset.append(html))  # the whole page set again
    for n in (3, 25, 40, len(answer)):
        msgs[-1].variants[0] = answer[:n]
        streamed.show_conversation(conv)
        counted = len(rendered)
        bg = whole.palette().alternateBase().color().name()
        whole.setHtml("".join(tr.Transcript._message_html(i, m, bg) for i, m in enumerate(msgs)))  # all at once
        whole.verticalScrollBar().setValue(whole.verticalScrollBar().maximum())
        del rendered[counted:]
        assert streamed.toPlainText() == whole.toPlainText()
        assert streamed.grab().toImage() == whole.grab().toImage(), f"after {n} characters"
    assert set(rendered) == {len(msgs) - 1} and not reset, "only the streaming message is drawn again"
    monkeypatch.undo()
    msgs[1].variants.append("Another answer.")  # a change above the last message: all of it again
    msgs[1].chosen = 1
    streamed.show_conversation(conv)
    assert "Another answer." in streamed.toPlainText() and "2/2" in streamed.toPlainText()


def test_costly_redraws_come_less_often(make_window, monkeypatch):
    """A redraw may take 5 % of a core while an answer streams: one that costs 10 ms waits 200 ms."""
    import time

    from desktop_app.ui.pages.chat import page as chat_page

    page = make_window(start=False).chat_page
    page.render()
    assert page._render_timer.interval() == chat_page.RENDER_INTERVAL_MS  # an empty transcript is cheap
    monkeypatch.setattr(page.transcript, "show_conversation", lambda conv: time.sleep(0.010))
    page.render()
    assert 200 <= page._render_timer.interval() <= 230
    monkeypatch.setattr(page.transcript, "show_conversation", lambda conv: time.sleep(0.5))
    page.render()
    assert page._render_timer.interval() == chat_page.RENDER_MAX_INTERVAL_MS
