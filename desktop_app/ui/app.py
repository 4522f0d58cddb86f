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
DIALOG_SHOT = "convert-dialog"  # after the pages: the Convert / Quantize dialog, on its own
DIALOG_SOURCE = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the starter's own checkpoint on the Hub


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
    """Renders every page to DIR/<page>.png with real content, then the Convert / Quantize dialog to
    DIR/convert-dialog.png (with its disk plan, or offline the reason there is none), then quits.

    It waits for what each page needs, one step at a time: the start (hardware, with the llama.cpp
    runtime check the first time, and the library), an answer on the Chat page, a short comparison
    on the Compare page. An error reported while it waits (a child that died, a model that failed
    to load) ends that wait at once: the page is grabbed as it shows the error, the reason is kept
    for the exit message, and the next page follows. A step that takes too long is named as such.
    """

    STEP_TIMEOUT_MS = {"start": 120_000, "chat": 90_000, "compare": 180_000, "dialog": 60_000}
    STEP_WHAT = {
        "start": "the hardware check (with llama.cpp's runtime check) and the library scan",
        "chat": "an answer from the starter model on the Chat page",
        "compare": "a short comparison on the Compare page",
        "dialog": "the disk plan in the Convert / Quantize dialog",
    }

    def __init__(self, window: MainWindow, out_dir: Path) -> None:
        super().__init__(window)
        self.window = window
        self.out_dir = out_dir
        self.written: list[Path] = []
        self.problems: list[str] = []
        self._hw = window.ctx.hardware is not None
        self._lib = False
        self.step = "start"
        self._index = -1
        self.dialog = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._timeout)
        self._timer.start(self.STEP_TIMEOUT_MS["start"])
        window.ctx.hardware_changed.connect(self._hardware_ready)
        window.ctx.hardware_failed.connect(self._hardware_failed)
        window.ctx.scan_finished.connect(self._library_ready)
        window.ctx.message.connect(self._message)

    @property
    def failed(self) -> str:
        return "; ".join(self.problems)

    def _hardware_ready(self, *_args) -> None:
        self._hw = True
        self._maybe_go()

    def _hardware_failed(self, text: str) -> None:
        self.problems.append(f"hardware: {text}")
        self._hardware_ready()

    def _library_ready(self, *_args) -> None:
        self._lib = True
        self._maybe_go()

    def _maybe_go(self) -> None:
        if self.step != "start" or not (self._hw and self._lib):
            return
        ctx = self.window.ctx
        starter = next((e for e in ctx.entries if e.source == "starter" and e.info), None)
        first = starter or next((e for e in ctx.entries if e.info), None)
        if first is not None:
            ctx.select_model(first)
            self.window.models_page.select_entry(first.id)
        self._shoot(0)

    def _message(self, message) -> None:
        """An error while a page's content is being made ends the wait for it, with this reason."""
        if getattr(message, "level", "") != "error" or self.step not in ("chat", "compare"):
            return
        self.problems.append(f"{PAGE_KEYS[self._index]}: {message.text}")
        self._settled(self.step)

    def _wait(self, step: str) -> None:
        self.step = step
        self._timer.start(self.STEP_TIMEOUT_MS[step])

    def _settled(self, step: str) -> None:
        """The content of the current page is there (or failed): grab it after layouts settle."""
        if self.step != step:
            return  # already settled (an error came first, then the page's own end signal)
        self.step = "grab"
        self._timer.stop()
        index = self._index
        QTimer.singleShot(150, lambda: self._grab(index))

    def _shoot(self, index: int) -> None:
        self._index = index
        if index == len(PAGE_KEYS):
            self._open_dialog()
            return
        if index > len(PAGE_KEYS):
            self.step = "done"
            self._timer.stop()
            QApplication.instance().quit()
            return
        self.window.show_page(index)
        if PAGE_KEYS[index] == "chat":
            chat = self.window.chat_page
            if chat.model_bar.combo.count():
                self._wait("chat")
                chat.answer_finished.connect(lambda: self._settled("chat"))
                chat.model_bar.confirm_large_loads = False  # no modal question in an unattended run
                chat.new_conversation()
                chat.settings_panel.preset.setCurrentText("Precise")
                chat.settings_panel.max_tokens.setValue(120)
                chat.input.setPlainText("Write a Python function that adds two numbers, with a short explanation.")
                chat.send()
                return
        if PAGE_KEYS[index] == "compare":
            page = self.window.compare_page
            if page.reference.count():
                self._wait("compare")
                page.finished.connect(self._compared)
                page.set_selection(page.reference.itemData(0), [page.reference.itemData(0)])
                page.n_ctx.setValue(128)
                page.chunks.setValue(4)
                page.start()
                return
        self.step = "page"
        self._settled("page")

    def _compared(self, comparison) -> None:
        for r in [comparison.reference, *comparison.candidates]:
            if r.error:
                self.problems.append(f"compare: {Path(r.path).name}: {r.error}")
        self._settled("compare")

    def _open_dialog(self) -> None:
        from desktop_app.ui.convert_dialog import ConvertDialog

        self.dialog = ConvertDialog(self.window.ctx, DIALOG_SOURCE, quant="Q4_K_M", parent=self.window)
        self._wait("dialog")
        self.dialog.plan_ready.connect(lambda: self._settled("dialog"))
        self.dialog.resize(700, self.dialog.sizeHint().height())
        self.dialog.show()

    def _grab(self, index: int) -> None:
        page = index < len(PAGE_KEYS)
        widget = self.window if page else self.dialog
        path = self.out_dir / f"{PAGE_KEYS[index] if page else DIALOG_SHOT}.png"
        if not widget.grab().save(str(path)):
            self.problems.append(f"could not write {path}")
        self.written.append(path)
        if not page:
            self.dialog.close()
        self._shoot(index + 1)

    def _timeout(self) -> None:
        what = self.STEP_WHAT.get(self.step, self.step)
        secs = self.STEP_TIMEOUT_MS.get(self.step, 0) // 1000
        self.problems.append(f"timed out after {secs} s waiting for {what}")
        if self.step == "start":
            QApplication.instance().quit()
            return
        self._settled(self.step)


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
