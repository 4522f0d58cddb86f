"""Model details on the real starter model; Settings with folders, token and theme."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from desktop_app.core import secrets
from desktop_app.core.settings import SettingsStore


def test_details_of_the_starter_model(make_window, starter_path):
    w = make_window()
    entry = w.ctx.find_entry(starter_path)
    w.ctx.select_model(entry)
    page = w.details_page
    assert page.header.title.text() == "SmolLM2-135M-Instruct.Q4_1"
    g = page.arch_grid
    assert g.value("Architecture") == "llama"
    assert g.value("Layers") == "30"
    assert g.value("Attention heads") == "9"
    assert g.value("KV heads").startswith("3 (grouped-query attention, 3 query heads per KV head)")
    assert g.value("Embedding size") == "576"
    assert g.value("Vocabulary") == "49,152 tokens (gpt2 tokenizer)"
    assert g.value("Context length").startswith("8,192")
    assert g.value("RoPE") == "base 100000, 64 dims"
    assert g.value("Quantization").startswith("Q4_1 — 5.74 bits per weight")
    mix = [[page.mix_table.item(r, c).text() for c in range(6)] for r in range(page.mix_table.rowCount())]
    assert [row[:2] for row in mix] == [["Q4_1", "210"], ["Q8_0", "1"], ["F32", "61"]]
    assert mix[0][5] == "5.00" and mix[1][5] == "8.50" and mix[2][5] == "32.00"
    assert page.mix_summary.text().startswith("210 × Q4_1, 1 × Q8_0, 61 × F32")
    assert "<|im_start|>" in page.template.toPlainText()
    keys = [page.meta_model.item(r, 0).text() for r in range(page.meta_model.rowCount())]
    assert "tokenizer.ggml.tokens" in keys and "tokenizer.chat_template" not in keys
    tokens_row = keys.index("tokenizer.ggml.tokens")
    assert page.meta_model.item(tokens_row, 2).text() == "[49,152 × string]"
    page.meta_filter.setText("rope")
    assert page.meta_proxy.rowCount() == 2


def test_details_without_a_model_points_to_the_models_page(make_window, qtbot):
    w = make_window(start=False)
    w.show_page_key("model_details")
    assert w.details_page.empty.isVisibleTo(w.details_page)
    qtbot.mouseClick(w.details_page.models_button, Qt.MouseButton.LeftButton)
    assert w.stack.currentWidget() is w.models_page


def test_settings_theme_applies_and_persists(make_window, qtbot):
    w = make_window(start=False)
    page = w.settings_page
    page.theme_combo.setCurrentIndex(page.theme_combo.findData("dark"))
    assert QApplication.instance().palette().color(QPalette.ColorRole.Window).lightness() < 80
    qtbot.waitUntil(lambda: SettingsStore().load().theme == "dark", timeout=5000)
    page.theme_combo.setCurrentIndex(page.theme_combo.findData("light"))
    assert QApplication.instance().palette().color(QPalette.ColorRole.Window).lightness() > 180


def test_settings_token_saved_in_keyring_not_shown(make_window, qtbot, isolated_env):
    w = make_window(start=False)
    page = w.settings_page
    qtbot.keyClicks(page.token_edit, "hf_abcdefghijklmnopqrstuvwxyz0123")
    qtbot.mouseClick(page.save_token_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "stored in the keyring" in page.token_status.text(), timeout=5000)
    assert page.token_edit.text() == ""
    assert secrets.get_hf_token() == "hf_abcdefghijklmnopqrstuvwxyz0123"
    qtbot.mouseClick(page.clear_token_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "No token saved" in page.token_status.text(), timeout=5000)


def test_settings_bad_token_is_refused_with_a_reason(make_window, qtbot):
    w = make_window(start=False)
    page = w.settings_page
    qtbot.keyClicks(page.token_edit, "not-a-token")
    qtbot.keyClick(page.token_edit, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: w.messages.isVisible(), timeout=5000)
    assert "does not look like a Hugging Face token" in w.messages.label.text()
    assert w.messages.level == "error"


def test_settings_folders_and_sources(make_window, tmp_path, qtbot):
    w = make_window()
    page = w.settings_page
    folder = tmp_path / "models"
    folder.mkdir()
    with qtbot.waitSignal(w.ctx.scan_finished, timeout=30_000):
        page.add_folder(str(folder))
    assert [page.folder_list.item(i).text() for i in range(page.folder_list.count())] == [str(folder)]
    with qtbot.waitSignal(w.ctx.scan_finished, timeout=30_000):
        page.starter_box.setChecked(False)
    assert all(e.source != "starter" for e in w.ctx.entries)
    page.folder_list.setCurrentRow(0)
    with qtbot.waitSignal(w.ctx.scan_finished, timeout=30_000):
        qtbot.mouseClick(page.remove_folder_button, Qt.MouseButton.LeftButton)
    assert w.ctx.settings.model_folders == []
    assert "no folders yet" in page.folder_list.item(0).text()


def test_damaged_settings_are_reported_at_startup(make_window):
    store = SettingsStore()
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text("{ broken")
    w = make_window(start=False)
    assert "damaged" in w.messages.label.text() and w.messages.level == "warning"
