from __future__ import annotations

import pytest

from desktop_app.ui.context import AppContext
from desktop_app.ui.main_window import MainWindow


@pytest.fixture
def make_window(qtbot):
    """Build a started main window (hardware detected, library scanned); closed after the test."""
    windows = []

    def make(*, settings=None, start=True) -> MainWindow:
        ctx = AppContext()
        if settings is not None:
            ctx.settings = settings
        window = MainWindow(ctx)
        qtbot.addWidget(window)
        windows.append(window)
        window.show()
        if start:
            with qtbot.waitSignals([ctx.hardware_changed, ctx.scan_finished], timeout=60_000):
                window.start()
        return window

    yield make
    for w in windows:
        w.close()
