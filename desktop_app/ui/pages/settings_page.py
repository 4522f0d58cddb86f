"""Settings: model folders, Hugging Face token (OS keyring), data location, threads, theme."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core import secrets
from desktop_app.core.paths import DATA_DIR_ENV, hf_hub_cache_dir
from desktop_app.core.runtime import default_threads
from desktop_app.ui.context import AppContext
from desktop_app.ui.desktop import reveal_in_file_manager
from desktop_app.ui.widgets import Card, KeyValueGrid, PageHeader, muted, scrolling_body

THEME_LABELS = [("system", "Follow the system"), ("light", "Light"), ("dark", "Dark")]


class SettingsPage(QWidget):
    title = "Settings"
    theme_changed = Signal(str)

    def __init__(self, ctx: AppContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx
        outer = QVBoxLayout(self)
        outer.setContentsMargins(24, 20, 24, 20)
        subtitle = "Where QuantDesk looks for models, keeps its data and your token, and how it runs models."
        outer.addWidget(PageHeader("Settings", subtitle))
        layout = QVBoxLayout(scrolling_body(outer))
        layout.setContentsMargins(0, 0, 8, 0)
        layout.setSpacing(14)
        layout.addWidget(self._build_folders_card())
        layout.addWidget(self._build_token_card())
        layout.addWidget(self._build_data_card())
        layout.addWidget(self._build_running_card())
        layout.addWidget(self._build_appearance_card())
        layout.addStretch(1)
        self._wire()
        self.load()
        self.refresh_token_status()

    def _build_folders_card(self) -> Card:
        """Model folders, plus the Hugging Face cache and starter model switches."""
        folders = Card("Model folders")
        folders.add(muted("QuantDesk lists every .gguf file in these folders and their subfolders."))
        self.folder_list = QListWidget()
        self.folder_list.setMaximumHeight(100)
        folders.add(self.folder_list)
        row = QHBoxLayout()
        self.add_folder_button = QPushButton("Add folder…")
        self.remove_folder_button = QPushButton("Remove folder")
        row.addWidget(self.add_folder_button)
        row.addWidget(self.remove_folder_button)
        row.addStretch(1)
        folders.body.addLayout(row)
        self.hf_cache_box = QCheckBox(f"Include models downloaded to the Hugging Face cache ({hf_hub_cache_dir()})")
        self.starter_box = QCheckBox("Show the starter model (SmolLM2-135M-Instruct, installed with QuantDesk)")
        folders.add(self.hf_cache_box)
        folders.add(self.starter_box)
        return folders

    def _build_token_card(self) -> Card:
        """The Hugging Face token field, kept in the OS keyring."""
        token = Card("Hugging Face token")
        token.add(
            muted(
                "Needed only for gated or private models. It is kept in your system's keyring, "
                "never in QuantDesk's files or logs."
            )
        )
        trow = QHBoxLayout()
        self.token_edit = QLineEdit()
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.setPlaceholderText("hf_…")
        self.save_token_button = QPushButton("Save token")
        self.clear_token_button = QPushButton("Remove token")
        trow.addWidget(self.token_edit, 1)
        trow.addWidget(self.save_token_button)
        trow.addWidget(self.clear_token_button)
        token.body.addLayout(trow)
        self.token_status = token.add(QLabel("Checking the keyring…"))
        self.token_status.setWordWrap(True)
        return token

    def _build_data_card(self) -> Card:
        """Where settings, data, cache and logs live, with buttons to open them."""
        data = Card("Data location")
        self.data_grid = data.add(KeyValueGrid())
        p = self.ctx.paths
        self.data_grid.set_rows(
            [
                ("Settings", str(p.settings_file)),
                ("Data", str(p.data_dir)),
                ("Cache", str(p.cache_dir)),
                ("Logs", str(p.log_file)),
            ]
        )
        note = (
            f"Chosen by the {DATA_DIR_ENV} environment variable."
            if p.portable
            else f"Your system's standard folders. Set {DATA_DIR_ENV} to keep everything in one folder "
            "(e.g. a portable install)."
        )
        data.add(muted(note))
        drow = QHBoxLayout()
        self.open_data_button = QPushButton("Open data folder")
        self.open_logs_button = QPushButton("Open log folder")
        drow.addWidget(self.open_data_button)
        drow.addWidget(self.open_logs_button)
        drow.addStretch(1)
        data.body.addLayout(drow)
        return data

    def _build_running_card(self) -> Card:
        """The llama.cpp thread count."""
        run = Card("Running models")
        rrow = QHBoxLayout()
        rrow.addWidget(QLabel("Threads for llama.cpp"))
        self.threads_spin = QSpinBox(minimum=0, maximum=4096)
        auto, basis = default_threads()
        self.threads_spin.setSpecialValueText(f"auto ({auto})")
        self.threads_spin.setToolTip("How many CPU threads llama.cpp uses to read prompts and to generate")
        rrow.addWidget(self.threads_spin)
        rrow.addStretch(1)
        run.body.addLayout(rrow)
        run.add(muted(f"auto is llama.cpp's own default here: {auto}, one per {basis.removesuffix('s')}. "
                      "More threads than cores usually makes generation slower. Applies to the next model "
                      "loaded, comparisons and quantization."))  # fmt: skip
        return run

    def _build_appearance_card(self) -> Card:
        """The theme picker."""
        look = Card("Appearance")
        lrow = QHBoxLayout()
        lrow.addWidget(QLabel("Theme"))
        self.theme_combo = QComboBox()
        for key, label in THEME_LABELS:
            self.theme_combo.addItem(label, key)
        lrow.addWidget(self.theme_combo)
        lrow.addStretch(1)
        look.body.addLayout(lrow)
        return look

    def _wire(self) -> None:
        """Connect the widgets and the app context to this page."""
        p = self.ctx.paths
        self.add_folder_button.clicked.connect(self._ask_folder)
        self.remove_folder_button.clicked.connect(self._remove_folder)
        self.folder_list.currentRowChanged.connect(lambda r: self.remove_folder_button.setEnabled(r >= 0))
        self.hf_cache_box.toggled.connect(self._toggle_hf)
        self.starter_box.toggled.connect(self._toggle_starter)
        self.save_token_button.clicked.connect(self._save_token)
        self.clear_token_button.clicked.connect(self._clear_token)
        self.token_edit.returnPressed.connect(self._save_token)
        self.open_data_button.clicked.connect(lambda: reveal_in_file_manager(str(p.data_dir)))
        self.open_logs_button.clicked.connect(lambda: reveal_in_file_manager(str(p.log_dir)))
        self.theme_combo.currentIndexChanged.connect(self._theme_picked)
        self.threads_spin.valueChanged.connect(self._threads_picked)
        self.ctx.settings_changed.connect(self.load)

    def load(self) -> None:
        s = self.ctx.settings
        self.folder_list.clear()
        self.folder_list.addItems(s.model_folders)
        if not s.model_folders:
            self.folder_list.addItem("(no folders yet — add the folder where you keep GGUF files)")
            self.folder_list.item(0).setFlags(Qt.ItemFlag.NoItemFlags)
        self.remove_folder_button.setEnabled(False)
        for box, value in ((self.hf_cache_box, s.include_hf_cache), (self.starter_box, s.include_starter)):
            box.blockSignals(True)
            box.setChecked(value)
            box.blockSignals(False)
        self.theme_combo.blockSignals(True)
        self.theme_combo.setCurrentIndex(max(0, self.theme_combo.findData(s.theme)))
        self.theme_combo.blockSignals(False)
        self.threads_spin.blockSignals(True)
        self.threads_spin.setValue(s.threads)
        self.threads_spin.blockSignals(False)

    # -- folders -------------------------------------------------------------------------------
    def _ask_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder with GGUF models")
        if folder:
            self.add_folder(folder)

    def add_folder(self, folder: str) -> None:
        if self.ctx.settings.add_folder(folder):
            self.ctx.save_settings(rescan=True)

    def _remove_folder(self) -> None:
        item = self.folder_list.currentItem()
        if item is None or item.text() not in self.ctx.settings.model_folders:
            return
        self.ctx.settings.model_folders.remove(item.text())
        self.ctx.save_settings(rescan=True)

    def _toggle_hf(self, on: bool) -> None:
        self.ctx.settings.include_hf_cache = on
        self.ctx.save_settings(rescan=True)

    def _toggle_starter(self, on: bool) -> None:
        self.ctx.settings.include_starter = on
        self.ctx.save_settings(rescan=True)

    def _threads_picked(self, value: int) -> None:
        self.ctx.settings.threads = value
        self.ctx.save_settings()

    def _theme_picked(self, _index: int) -> None:
        self.ctx.settings.theme = self.theme_combo.currentData()
        self.ctx.save_settings()
        self.theme_changed.emit(self.ctx.settings.theme)

    # -- token (keyring calls can block on a locked keyring: io thread) --------------------------
    def refresh_token_status(self) -> None:
        def status() -> str:
            source = secrets.token_source()
            if source == "keyring":
                return f"A token is stored in the keyring ({secrets.keyring_backend_name()})."
            if source == "environment":
                return "Using the token from the HF_TOKEN environment variable."
            if not secrets.keyring_usable():
                return (
                    "No OS keyring is available here, so a token cannot be saved safely. "
                    "Set the HF_TOKEN environment variable to use gated models."
                )
            return "No token saved: public models only."

        self.ctx.run_io(status, owner=self, on_result=self._show_token_status, on_error=self._show_token_status)

    def _show_token_status(self, result) -> None:
        self.token_status.setText(str(result))

    def _save_token(self) -> None:
        token = self.token_edit.text()
        self.token_edit.clear()  # never keep the secret in the widget longer than needed
        self.save_token_button.setEnabled(False)

        def saved(_result) -> None:
            self.ctx.notify("Token saved in the OS keyring.")
            self._token_saved()

        def failed(exc: Exception) -> None:
            self.ctx.notify(str(exc), "error")
            self._token_saved()

        self.ctx.run_io(secrets.set_hf_token, token, owner=self, on_result=saved, on_error=failed)

    def _token_saved(self) -> None:
        self.save_token_button.setEnabled(True)
        self.refresh_token_status()

    def _clear_token(self) -> None:
        def removed(_result) -> None:
            self.ctx.notify("Token removed from the keyring.")
            self.refresh_token_status()

        self.ctx.run_io(secrets.delete_hf_token, owner=self, on_result=removed)
