"""Start the window; or, with ``--screenshots DIR``, render every page with real content and exit."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from desktop_app import __version__
from desktop_app.resources import resource_path
from desktop_app.ui.context import AppContext
from desktop_app.ui.main_window import PAGE_KEYS, MainWindow
from desktop_app.ui.theme import apply_theme

log = logging.getLogger(__name__)
SCREENSHOT_SIZE = (1280, 800)
SCREENSHOT_TIMEOUT_MS = 60_000


def make_app(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv[:1])
    app.setApplicationName("QuantDesk")
    app.setOrganizationName("QuantDesk")
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("quantdesk")
    icon = resource_path("icons/quantdesk.svg")
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    return app


class ScreenshotRunner(QObject):
    """Waits for the hardware and the library, then grabs each page to DIR/<page>.png and quits."""

    def __init__(self, window: MainWindow, out_dir: Path) -> None:
        super().__init__(window)
        self.window = window
        self.out_dir = out_dir
        self.written: list[Path] = []
        self.failed = ""
        self._hw = window.ctx.hardware is not None
        self._lib = False
        self._chatted = False
        self._compared = False
        window.ctx.hardware_changed.connect(self._hardware_ready)
        window.ctx.hardware_failed.connect(self._hardware_ready)
        window.ctx.scan_finished.connect(self._library_ready)
        QTimer.singleShot(SCREENSHOT_TIMEOUT_MS, self._timeout)

    def _hardware_ready(self, *_args) -> None:
        self._hw = True
        self._maybe_go()

    def _library_ready(self, *_args) -> None:
        self._lib = True
        self._maybe_go()

    def _maybe_go(self) -> None:
        if not (self._hw and self._lib) or self.written:
            return
        ctx = self.window.ctx
        starter = next((e for e in ctx.entries if e.source == "starter" and e.info), None)
        first = starter or next((e for e in ctx.entries if e.info), None)
        if first is not None:
            ctx.select_model(first)
            self.window.models_page.select_entry(first.id)
        self._shoot(0)

    def _shoot(self, index: int) -> None:
        if index >= len(PAGE_KEYS):
            QApplication.instance().quit()
            return
        self.window.show_page(index)
        if PAGE_KEYS[index] == "chat" and not self._chatted:
            self._chatted = False
            chat = self.window.chat_page
            if chat.model_combo.count():
                chat.answer_finished.connect(lambda: QTimer.singleShot(150, lambda: self._grab(index)))
                chat.new_conversation()
                chat.preset.setCurrentText("Precise")
                chat.max_tokens.setValue(120)
                chat.input.setPlainText("Write a Python function that adds two numbers, with a short explanation.")
                chat.send()
                return
        if PAGE_KEYS[index] == "compare" and not self._compared:
            self._compared = False
            page = self.window.compare_page
            if page.reference.count():
                page.finished.connect(lambda _c: QTimer.singleShot(150, lambda: self._grab(index)))
                page.set_selection(page.reference.itemData(0), [page.reference.itemData(0)])
                page.n_ctx.setValue(128)
                page.chunks.setValue(4)
                page.start()
                return
        # let layouts settle for one event-loop turn before grabbing
        QTimer.singleShot(150, lambda: self._grab(index))

    def _grab(self, index: int) -> None:
        path = self.out_dir / f"{PAGE_KEYS[index]}.png"
        if not self.window.grab().save(str(path)):
            self.failed = f"could not write {path}"
        self.written.append(path)
        self._shoot(index + 1)

    def _timeout(self) -> None:
        if len(self.written) < len(PAGE_KEYS):
            self.failed = "timed out waiting for the hardware probe and the library scan"
            QApplication.instance().quit()


def _report_startup_and_quit(window: MainWindow) -> None:
    """For the start-up benchmark: print seconds since process start to shown and to first list."""
    import json
    import time

    import psutil

    started = psutil.Process().create_time()
    times: dict[str, float] = {}

    def shown() -> None:
        times["window_shown_s"] = time.time() - started

    def listed() -> None:
        if "library_listed_s" not in times:
            times["library_listed_s"] = time.time() - started
            times["entries"] = len(window.ctx.entries)
            print(json.dumps(times), flush=True)
            QApplication.instance().quit()

    QTimer.singleShot(0, shown)
    window.ctx.library_changed.connect(listed)


def run_gui(*, screenshots_dir: str | None = None) -> int:
    app = make_app()
    ctx = AppContext()
    apply_theme(app, ctx.settings.theme)
    window = MainWindow(ctx, restore_state=screenshots_dir is None)
    runner = None
    if screenshots_dir:
        out = Path(screenshots_dir)
        out.mkdir(parents=True, exist_ok=True)
        window.resize(*SCREENSHOT_SIZE)
        runner = ScreenshotRunner(window, out)
    window.show()
    hints = app.styleHints()
    if hasattr(hints, "colorSchemeChanged"):
        hints.colorSchemeChanged.connect(lambda *_: apply_theme(app, ctx.settings.theme))
    QTimer.singleShot(0, window.start)
    if os.environ.get("QUANTDESK_EXIT_WHEN_SHOWN"):
        _report_startup_and_quit(window)
    code = app.exec()
    if runner is not None:
        window.close()
        if runner.failed:
            print(f"screenshots failed: {runner.failed}", file=sys.stderr)
            code = 1
        else:
            for p in runner.written:
                print(os.fspath(p))
    _exit_now(code)
    return code


def _exit_now(code: int) -> None:
    """Leave without the interpreter's final garbage collection.

    Everything is saved by then (window state, settings, the download queue, conversations). After a
    chat and a comparison in one session, PySide6 6.12's teardown of its wrappers during that last
    collection can abort the process ("bool_dealloc ... refcount error in a C extension"), turning a
    clean quit into a crash report. Flushing and leaving directly avoids it.
    """
    import logging

    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
