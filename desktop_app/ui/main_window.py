"""The main window: a sidebar down the user's journey and one page per step."""

from __future__ import annotations

import os
import sys

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from desktop_app import __version__
from desktop_app.ui.context import AppContext, Message
from desktop_app.ui.convert_dialog import ConvertDialog
from desktop_app.ui.downloads import DownloadManager
from desktop_app.ui.monitor import ResourceMonitor
from desktop_app.ui.pages.chat import ChatPage
from desktop_app.ui.pages.compare_page import ComparePage
from desktop_app.ui.pages.discover_page import DiscoverPage
from desktop_app.ui.pages.hardware_page import HardwarePage
from desktop_app.ui.pages.model_details_page import ModelDetailsPage
from desktop_app.ui.pages.models_page import ModelsPage
from desktop_app.ui.pages.settings_page import SettingsPage
from desktop_app.ui.theme import apply_theme
from desktop_app.ui.widgets import MessageBar

PAGE_KEYS = ["hardware", "discover", "models", "model_details", "chat", "compare", "settings"]
CHAT_PAGE = PAGE_KEYS.index("chat")


GIL_SWITCH_INTERVAL_S = 0.001


class MainWindow(QMainWindow):
    def __init__(self, ctx: AppContext, *, restore_state: bool = True) -> None:
        super().__init__()
        # Workers (header parsing, log parsing, the Hub) are Python threads: with the default 5 ms
        # GIL switch interval the GUI thread can wait several turns for the GIL before it paints.
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        self.ctx = ctx
        self._chat_after_scan = ""  # a converted model to open in Chat once the scan lists it
        self.setWindowTitle("QuantDesk")
        self.setMinimumSize(960, 640)
        self.state = QSettings(str(ctx.paths.state_file), QSettings.Format.IniFormat)
        self._build_frame()
        self._build_pages()
        self.statusBar().showMessage(f"QuantDesk {__version__}")
        self.monitor = ResourceMonitor(parent=self)
        self.monitor.memory.connect(self.hardware_page.update_memory)
        self._wire()
        self._restore(restore_state)
        if ctx.startup_problem():
            ctx.notify(ctx.startup_problem(), "warning")

    def _build_frame(self) -> None:
        """The sidebar on the left; the message bar above the page stack on the right."""
        central = QWidget()
        root = QHBoxLayout(central)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)
        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setFixedWidth(200)
        self.sidebar.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        root.addWidget(self.sidebar)

        right = QVBoxLayout()
        right.setContentsMargins(12, 10, 12, 0)
        self.messages = MessageBar()
        right.addWidget(self.messages)
        self.stack = QStackedWidget()
        right.addWidget(self.stack, 1)
        root.addLayout(right, 1)
        self.setCentralWidget(central)

    def _build_pages(self) -> None:
        """One page per step, each with a sidebar entry and a Ctrl+number shortcut."""
        ctx = self.ctx
        self.hardware_page = HardwarePage(ctx)
        self.downloads = DownloadManager(ctx, self)
        self.discover_page = DiscoverPage(ctx, self.downloads)
        self.models_page = ModelsPage(ctx)
        self.details_page = ModelDetailsPage(ctx)
        self.chat_page = ChatPage(ctx)
        self.compare_page = ComparePage(ctx)
        self.settings_page = SettingsPage(ctx)
        icons = [
            QStyle.StandardPixmap.SP_ComputerIcon,
            QStyle.StandardPixmap.SP_DriveNetIcon,
            QStyle.StandardPixmap.SP_DirIcon,
            QStyle.StandardPixmap.SP_FileDialogDetailedView,
            QStyle.StandardPixmap.SP_MessageBoxQuestion,
            QStyle.StandardPixmap.SP_FileDialogContentsView,
            QStyle.StandardPixmap.SP_FileDialogInfoView,
        ]
        self.pages = [
            self.hardware_page,
            self.discover_page,
            self.models_page,
            self.details_page,
            self.chat_page,
            self.compare_page,
            self.settings_page,
        ]
        for n, (page, icon) in enumerate(zip(self.pages, icons, strict=True), start=1):
            self.stack.addWidget(page)
            item = QListWidgetItem(self.style().standardIcon(icon), page.title)
            item.setToolTip(f"{page.title} (Ctrl+{n})")
            self.sidebar.addItem(item)
            QShortcut(QKeySequence(f"Ctrl+{n}"), self, activated=lambda i=n - 1: self.show_page(i))
        self.sidebar.currentRowChanged.connect(self.stack.setCurrentIndex)
        self.stack.currentChanged.connect(self._watch_memory)

    def _wire(self) -> None:
        """Connect the pages and the app context to the window."""
        self.ctx.message.connect(self._show_message)
        self.models_page.open_details.connect(self._open_details)
        self.models_page.chat_requested.connect(self.chat_with)
        self.discover_page.chat_requested.connect(self.chat_with)
        self.ctx.scan_finished.connect(lambda _r: QTimer.singleShot(0, self._chat_when_listed))
        self.details_page.go_to_models.connect(lambda: self.show_page_key("models"))
        self.settings_page.theme_changed.connect(self._apply_theme)
        self.ctx.scan_started.connect(lambda: self.statusBar().showMessage("Scanning the model library…"))
        self.ctx.scan_finished.connect(
            lambda r: self.statusBar().showMessage(
                f"{len(r.models)} model{'s' if len(r.models) != 1 else ''} in the library", 5000
            )
        )

    def _restore(self, restore_state: bool) -> None:
        """Restore the window's size and page from last time, or use the first-launch defaults."""
        page = CHAT_PAGE  # a first launch goes straight to a chat with the starter model
        if restore_state:
            geometry = self.state.value("window/geometry")
            if isinstance(geometry, QByteArray):
                self.restoreGeometry(geometry)
            else:
                self.resize(1280, 800)
            page = int(self.state.value("window/page", CHAT_PAGE))
        else:
            self.resize(1280, 800)
        self.show_page(page if 0 <= page < len(self.pages) else CHAT_PAGE)

    def start(self) -> None:
        """Begin the background work: hardware detection, library scan, live memory readings."""
        self.ctx.detect_hardware()
        self.ctx.rescan()
        self._watch_memory()
        self.monitor.start()
        self.downloads.start()

    def _watch_memory(self, _index: int = -1) -> None:
        """Live RAM readings only while the Hardware page shows them."""
        self.monitor.set_wanted(self.stack.currentWidget() is self.hardware_page)

    def show_page(self, index: int) -> None:
        self.sidebar.setCurrentRow(index)

    def show_page_key(self, key: str) -> None:
        self.show_page(PAGE_KEYS.index(key))

    def current_page_key(self) -> str:
        return PAGE_KEYS[self.stack.currentIndex()]

    def _open_details(self, entry) -> None:
        self.ctx.select_model(entry)
        self.show_page_key("model_details")

    def chat_with(self, path: str) -> None:
        """Open the model at ``path`` in Chat and load it; a file just added waits for the scan that
        lists it."""
        real = os.path.realpath(path)
        entry = next((e for e in self.ctx.entries if e.info and os.path.realpath(e.id) == real), None)
        if entry is None:
            self._chat_after_scan = path if self.ctx.scanning else ""
            if not self.ctx.scanning:
                self.ctx.notify(f"{os.path.basename(path)} is not in the library: add it on the Models page.",
                                "warning")  # fmt: skip
            return
        self._chat_after_scan = ""
        self.ctx.select_model(entry)
        bar = self.chat_page.model_bar
        bar.fill()
        bar.combo.setCurrentIndex(max(0, bar.combo.findData(entry.id)))
        self.show_page_key("chat")
        self.chat_page.load_selected()

    def _chat_when_listed(self) -> None:
        """After a scan: the model waiting for Chat, once it is listed (or no scan is left to list it)."""
        if self._chat_after_scan:
            self.chat_with(self._chat_after_scan)
        if self._chat_after_scan:  # the scan's worker is still winding down: look again shortly
            QTimer.singleShot(100, self._chat_when_listed)

    def _show_message(self, msg: Message) -> None:
        self.messages.show_message(msg.text, msg.level)

    def _apply_theme(self, theme: str) -> None:
        app = QApplication.instance()
        if app is not None:
            apply_theme(app, theme)

    def closeEvent(self, event: QCloseEvent) -> None:
        busy = self.downloads.busy() + self.compare_page.busy() + ConvertDialog.busy_jobs()
        if busy:
            answer = QMessageBox.question(
                self,
                "Quit QuantDesk?",
                "These are still running and will be stopped:\n\n• " + "\n• ".join(busy),
            )
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
        self.state.setValue("window/geometry", self.saveGeometry())
        self.state.setValue("window/page", self.stack.currentIndex())
        self.state.sync()
        self.monitor.stop()
        self.chat_page.shutdown()
        self.compare_page.shutdown()
        ConvertDialog.cancel_all()
        self.downloads.shutdown()
        self.ctx.shutdown()
        super().closeEvent(event)
