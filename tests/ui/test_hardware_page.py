from __future__ import annotations

import psutil

from desktop_app.core.units import format_memory


def test_hardware_page_shows_this_machine(make_window, qtbot):
    w = make_window()
    page = w.hardware_page
    hw = w.ctx.hardware
    assert page.cpu_grid.value("Name") == hw.cpu.name
    assert page.cpu_grid.value("Cores") == f"{hw.cpu.physical_cores} physical, {hw.cpu.logical_cores} logical"
    assert "AVX2" in page.cpu_grid.value("SIMD features") or not hw.cpu.features
    assert page.mem_grid.value("Total") == format_memory(psutil.virtual_memory().total)
    assert page.llama_grid.value("llama-cpp-python") == "0.3.36"
    if not hw.llama_cpp.gpu_offload_supported:
        assert "cannot offload" in page.offload_label.text()
        # the exact command for a GPU build is there to copy, for each backend
        assert page.backend_combo.count() >= 2
        page.backend_combo.setCurrentText("CUDA")
        assert 'CMAKE_ARGS="-DGGML_CUDA=on"' in page.command.edit.text()
        qtbot.mouseClick(page.command.copy_button, qtbot_left())
        assert psutil  # clipboard content checked below
        from PySide6.QtGui import QGuiApplication

        assert QGuiApplication.clipboard().text() == page.command.edit.text()


def test_ram_is_live(make_window, qtbot):
    w = make_window()
    w.show_page_key("hardware")
    w.hardware_page.mem_grid.set_value("Available now", "stale")
    with qtbot.waitSignal(w.monitor.memory, timeout=5000):
        pass
    qtbot.waitUntil(lambda: w.hardware_page.mem_grid.value("Available now") != "stale", timeout=3000)
    assert w.hardware_page.mem_grid.value("Available now").endswith("GiB")


def test_ram_is_read_only_while_the_hardware_page_shows_it(make_window, qtbot):
    # Each reading and repaint is CPU taken from llama.cpp's threads on a small machine.
    w = make_window()
    w.show_page_key("chat")
    assert not w.monitor.wanted
    readings = []
    w.monitor.memory.connect(lambda *_: readings.append(1))
    qtbot.wait(1300)  # a reading already under way when the page changed may still land
    readings.clear()
    qtbot.wait(2200)
    assert readings == []
    w.show_page_key("hardware")
    assert w.monitor.wanted
    with qtbot.waitSignal(w.monitor.memory, timeout=700):  # at once, not after the rest of a second
        pass


def qtbot_left():
    from PySide6.QtCore import Qt

    return Qt.MouseButton.LeftButton
