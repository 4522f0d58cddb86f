"""The fit panel on the Model details page, with the real starter model."""

from __future__ import annotations

from PySide6.QtCore import Qt

from desktop_app.core.memory import Machine
from desktop_app.core.memory.history import MeasurementStore

GiB = 1024**3


def _details(make_window, qtbot, starter_path):
    w = make_window()
    w.ctx.select_model(w.ctx.find_entry(starter_path))
    panel = w.details_page.fit_panel
    qtbot.waitUntil(lambda: panel.prediction is not None, timeout=10_000)
    return w, panel


def test_fit_panel_explains_and_follows_the_slider(make_window, qtbot, starter_path):
    w, panel = _details(make_window, qtbot, starter_path)
    assert w.details_page.tabs.currentWidget() is panel
    assert panel.verdict.text().startswith("Runs on the CPU, using ")
    assert "at 4k context" in panel.verdict.text()
    assert "8,192 tokens" in panel.max_ctx.text()
    kv_4k = panel.prediction.ram.kv_cache_bytes
    assert kv_4k == 4096 * 30 * 192 * 2 * 2
    panel.set_context(8192)
    assert panel.ctx_value.text().startswith("8,192 tokens")
    assert panel.prediction.ram.kv_cache_bytes == 2 * kv_4k
    assert panel.legend_labels["kv_cache_bytes"].text() == "Conversation memory (KV cache): 188.7 MB"
    qtbot.keyClick(panel.ctx_slider, Qt.Key.Key_Home)
    assert panel.prediction.n_ctx == 512
    panel.kv_combo.setCurrentIndex(panel.kv_combo.findData("q8_0"))
    assert panel.prediction.ram.kv_cache_bytes == 512 * 30 * 192 * 2 * 34 // 32
    # the standard quants, planned from this file
    rows = [panel.quants_table.item(r, 0).text() for r in range(panel.quants_table.rowCount())]
    assert rows == ["Q2_K", "Q3_K_M", "Q4_K_S", "Q4_K_M", "Q5_K_M", "Q6_K", "Q8_0"]  # the one ladder, smallest first
    assert panel.quants_table.item(3, 1).text() == "105.5 MB"  # Q4_K_M: what llama.cpp's quantizer writes


def test_too_large_names_what_would_fit(make_window, qtbot, starter_path):
    _w, panel = _details(make_window, qtbot, starter_path)
    small = Machine(ram_available_bytes=int(0.95 * GiB), ram_total_bytes=2 * GiB, cpu_features=("AVX2",))
    panel.set_model(panel.shape, small)
    panel.set_context(8192)
    assert panel.prediction.verdict == "too_large"
    text = panel.verdict.text()
    assert text.startswith("Needs ") and "more RAM" in text and "try" in text
    assert panel.prediction.max_ctx is not None and panel.prediction.max_ctx < 8192


def test_measure_records_what_llama_cpp_allocated(make_window, qtbot, starter_path):
    w, panel = _details(make_window, qtbot, starter_path)
    panel.set_context(1024)
    qtbot.mouseClick(panel.measure_button, Qt.MouseButton.LeftButton)
    assert panel.measure_button.text() == "Measuring…"
    qtbot.waitUntil(lambda: panel.measured.text().startswith("Measured last time"), timeout=60_000)
    assert "1,024 context" in panel.measured.text() and "+0.0 % off" in panel.measured.text()
    [rec] = MeasurementStore().all()
    assert rec.model_path == starter_path and rec.settings["n_ctx"] == 1024
    assert rec.measured["kv_cache_bytes"] == 1024 * 30 * 192 * 2 * 2
    qtbot.waitUntil(lambda: panel.measure_button.isEnabled(), timeout=5000)
