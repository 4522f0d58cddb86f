"""The main window: navigation, state restored on restart, theme, messages."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QLabel

from desktop_app.ui.theme import apply_theme


def test_sidebar_lists_the_journey_and_keyboard_moves_through_it(make_window, qtbot):
    w = make_window()
    assert [w.sidebar.item(i).text() for i in range(w.sidebar.count())] == [
        "Hardware",
        "Discover",
        "Models",
        "Model details",
        "Chat",
        "Compare",
        "Settings",
    ]
    w.sidebar.setFocus()
    w.show_page(0)
    qtbot.keyClick(w.sidebar, Qt.Key.Key_Down)
    assert w.stack.currentWidget() is w.discover_page
    qtbot.keyClick(w, Qt.Key.Key_7, Qt.KeyboardModifier.ControlModifier)
    assert w.stack.currentWidget() is w.settings_page
    qtbot.keyClick(w, Qt.Key.Key_6, Qt.KeyboardModifier.ControlModifier)
    assert w.stack.currentWidget() is w.compare_page
    qtbot.keyClick(w, Qt.Key.Key_5, Qt.KeyboardModifier.ControlModifier)
    assert w.stack.currentWidget() is w.chat_page
    qtbot.keyClick(w, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert w.current_page_key() == "hardware"


def test_page_and_geometry_survive_a_restart(make_window):
    w = make_window(start=False)
    w.resize(1100, 700)
    w.show_page_key("settings")
    w.close()
    again = make_window(start=False)
    assert again.current_page_key() == "settings"
    # the offscreen screen is 800 px wide, so Qt clamps the width when restoring; the height is ours
    assert again.height() == 700


def test_first_launch_opens_the_chat_with_the_starter_model(make_window):
    w = make_window()
    assert w.current_page_key() == "chat"
    assert w.chat_page.model_bar.combo.currentText().startswith("SmolLM2-135M-Instruct.Q4_1")


def test_messages_appear_in_one_place_and_can_be_dismissed(make_window, qtbot):
    w = make_window(start=False)
    w.ctx.notify("Something went wrong: do this.", "error")
    assert w.messages.isVisible() and w.messages.label.text() == "Something went wrong: do this."
    assert w.messages.level == "error"
    with qtbot.waitSignal(w.messages.dismissed):
        w.messages.dismiss()
    assert not w.messages.isVisible()


def test_dark_and_light_palettes():
    app = QApplication.instance()
    assert apply_theme(app, "dark") is True
    assert app.palette().color(QPalette.ColorRole.Window).lightness() < 80
    assert apply_theme(app, "light") is False
    assert app.palette().color(QPalette.ColorRole.Window).lightness() > 180
    apply_theme(app, "system")


def test_a_late_worker_result_does_not_reach_a_deleted_widget(qtbot):
    from shiboken6 import delete

    from desktop_app.ui.work import guarded

    label = QLabel()
    seen = []
    slot = guarded(label, lambda text: (label.setText(text), seen.append(text)))
    slot("first")
    delete(label)
    slot("late")  # the page is gone: nothing happens, nothing raises
    assert seen == ["first"]


def test_background_work_reports_to_separate_callbacks_and_only_while_its_owner_lives(qtbot):
    import threading

    from shiboken6 import delete

    from desktop_app.ui import work

    def counting(n, cancel: threading.Event):
        for i in range(n):
            if cancel.is_set():
                return "cancelled"
            yield i
        return "counted"

    owner = QLabel()
    got = []
    job = work.start(owner, counting, 3, cancellable=True, on_progress=lambda i: got.append(("progress", i)),
                     on_result=lambda r: got.append(("result", r)), on_error=lambda e: got.append(("error", e)),
                     on_finished=lambda: got.append(("finished",)))  # fmt: skip
    qtbot.waitUntil(lambda: not job.running, timeout=10_000)
    qtbot.waitUntil(lambda: ("finished",) in got, timeout=10_000)
    assert got == [("progress", 0), ("progress", 1), ("progress", 2), ("result", "counted"), ("finished",)]

    def failing():
        raise ValueError("the disk said no")

    got.clear()
    job = work.start(owner, failing, on_result=lambda r: got.append(("result", r)),
                     on_error=lambda e: got.append(("error", str(e))))  # fmt: skip
    qtbot.waitUntil(lambda: not job.running, timeout=10_000)
    qtbot.waitUntil(lambda: bool(got), timeout=10_000)
    assert got == [("error", "the disk said no")]

    got.clear()
    release = threading.Event()
    job = work.start(owner, lambda: release.wait(10) and "late", on_result=lambda r: got.append(r),
                     on_finished=lambda: got.append("finished"))  # fmt: skip
    delete(owner)  # the page closes while the job runs
    release.set()
    qtbot.waitUntil(lambda: not job.running, timeout=10_000)
    qtbot.wait(50)
    assert got == []  # nothing reached the deleted owner, and nothing raised
