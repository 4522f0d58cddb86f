"""The Convert / Quantize dialog with the real pipeline (a tiny random checkpoint, converted in about a
second), and the ways in: Discover's "Download and convert…" and the Models page's button."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtWidgets import QFileDialog, QMessageBox
from shiboken6 import isValid

from desktop_app.core.settings import SettingsStore
from desktop_app.core.units import format_bytes
from desktop_app.ui import convert_dialog
from desktop_app.ui.context import AppContext
from desktop_app.ui.convert_dialog import ConvertDialog
from tests.hf_factory import random_checkpoint

pytestmark = pytest.mark.slow
JOB_TIMEOUT = 120_000
PLAN_TIMEOUT = 30_000


@pytest.fixture
def checkpoint(tmp_path) -> Path:
    return random_checkpoint(tmp_path / "hf" / "Tiny-Llama", "llama")


@pytest.fixture
def ctx():
    context = AppContext()
    yield context
    QThreadPool.globalInstance().waitForDone(30_000)  # the library scan a finished job started
    context.shutdown()


@pytest.fixture
def open_dialog(qtbot, ctx, tmp_path):
    """Open a dialog writing to tmp_path/out; at the end, any job still running is cancelled and waited for."""
    opened: list[ConvertDialog] = []

    def make(source, **kwargs) -> ConvertDialog:
        dialog = ConvertDialog(ctx, str(source), outdir=tmp_path / "out", **kwargs)
        dialog.show()
        opened.append(dialog)
        return dialog

    yield make
    for d in opened:
        if isValid(d):
            if d.busy:
                d.cancel()
                qtbot.waitUntil(lambda d=d: not d.busy, timeout=JOB_TIMEOUT)
            d.close()


def _out_files(tmp_path) -> list[str]:
    out = tmp_path / "out"
    return sorted(p.name for p in out.iterdir()) if out.exists() else []


def _run(qtbot, d) -> list[str]:
    """Start the job and wait for it to succeed; the phase lines it showed on the way."""
    phases: list[str] = []
    d.progressed.connect(lambda _p: phases.append(d.phase.text()))
    with qtbot.waitSignal(d.ended, timeout=JOB_TIMEOUT) as ended:
        d.start()
    assert ended.args == ["done"], d.outcome_label.text()
    return phases


def test_a_checkpoint_is_converted_quantized_and_added_to_the_library(qtbot, ctx, open_dialog, checkpoint, tmp_path):
    d = open_dialog(checkpoint, quant="Q4_K_M")
    assert d.kind == "folder" and "Checkpoint folder" in d.source_label.text()
    assert d.outtype.isVisibleTo(d) and d.keep.isVisibleTo(d)
    assert d.quant.findData("") >= 0, "a checkpoint can stop at the converted F16"
    d.quant.setCurrentIndex(d.quant.findData("Q8_0"))
    qtbot.waitUntil(d.start_button.isEnabled, timeout=PLAN_TIMEOUT)
    assert d.plan_label.text().startswith("This needs")
    phases: list[str] = []
    d.progressed.connect(lambda _p: phases.append(d.phase.text()))
    with qtbot.waitSignal(d.ended, timeout=JOB_TIMEOUT) as ended:
        qtbot.mouseClick(d.start_button, Qt.MouseButton.LeftButton)
        assert not d.options.isEnabled() and d.cancel_button.isVisible() and not d.close_button.isVisible()
    assert ended.args == ["done"], d.outcome_label.text()
    out = tmp_path / "out" / "Tiny-Llama-Q8_0.gguf"
    assert _out_files(tmp_path) == [out.name], "the intermediate F16 is deleted"
    assert any(t.startswith("Converting blk.") for t in phases), phases
    assert any(t.startswith("Quantizing ") and t.endswith(" tensors") for t in phases), phases
    text = d.outcome_label.text()
    assert str(out) in text and format_bytes(out.stat().st_size) in text and " s." in text
    assert d.chat_button.isVisible() and not d.start_button.isVisible() and d.close_button.isVisible()
    assert str(out) in ctx.settings.extra_files
    qtbot.waitUntil(lambda: str(out) in SettingsStore().load().extra_files, timeout=10_000)
    qtbot.waitUntil(lambda: any(e.id == str(out) and e.info for e in ctx.entries), timeout=30_000)


def test_cancel_says_so_and_leaves_nothing(qtbot, open_dialog, checkpoint, tmp_path):
    d = open_dialog(checkpoint, quant="Q4_K_M")
    qtbot.waitUntil(d.start_button.isEnabled, timeout=PLAN_TIMEOUT)
    with qtbot.waitSignal(d.ended, timeout=JOB_TIMEOUT) as ended:
        d.start()
        qtbot.mouseClick(d.cancel_button, Qt.MouseButton.LeftButton)
        assert d.phase.text() == "Cancelling…" and not d.cancel_button.isEnabled()
    assert ended.args == ["cancelled"]
    assert d.outcome_label.text() == "Cancelled; nothing half-made was kept."
    assert _out_files(tmp_path) == []
    assert d.start_button.isEnabled() and d.options.isEnabled(), "it can be started again"


def test_closing_while_running_asks_and_closes_once_cancelled(qtbot, open_dialog, checkpoint, tmp_path, monkeypatch):
    asked: list[str] = []
    monkeypatch.setattr(convert_dialog.QMessageBox, "question",
                        lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes)  # fmt: skip
    d = open_dialog(checkpoint, quant="Q4_K_M")
    qtbot.waitUntil(d.start_button.isEnabled, timeout=PLAN_TIMEOUT)
    with qtbot.waitSignal(d.ended, timeout=JOB_TIMEOUT) as ended:
        d.start()
        d.close()
        assert asked and "Cancel it?" in asked[0]
        assert d.isVisible(), "the dialog stays until the worker has ended"
    assert ended.args == ["cancelled"]
    qtbot.waitUntil(lambda: not isValid(d) or not d.isVisible(), timeout=5_000)
    assert _out_files(tmp_path) == []


def test_a_folder_without_config_json_is_refused_with_the_reason(qtbot, open_dialog, tmp_path):
    bad = tmp_path / "not-a-checkpoint"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes(b"\0" * 16)
    d = open_dialog(bad)
    with qtbot.waitSignal(d.plan_ready, timeout=PLAN_TIMEOUT):
        pass
    assert "config.json is missing" in d.plan_label.text() and "Traceback" not in d.plan_label.text()
    assert not d.start_button.isEnabled()
    d.start()  # refused: nothing runs
    assert not d.busy and _out_files(tmp_path) == []


def test_models_page_quantized_gguf_is_explained(make_window, qtbot):
    w = make_window()
    page = w.models_page
    assert page.select_entry(next(e.id for e in w.ctx.entries if e.source == "starter"))
    page.convert_button.click()
    d = page.convert_dialog
    assert d.kind == "gguf" and "GGUF file" in d.source_label.text()
    assert not d.outtype.isVisibleTo(d) and not d.keep.isVisibleTo(d) and d.quant.findData("") < 0
    with qtbot.waitSignal(d.plan_ready, timeout=PLAN_TIMEOUT):
        pass
    assert "is already quantized" in d.plan_label.text()
    assert not d.start_button.isEnabled()
    d.close()


def test_models_page_converts_a_folder_and_chats_with_it(make_window, qtbot, checkpoint, monkeypatch):
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(checkpoint))
    w = make_window()
    page = w.models_page
    page.table.clearSelection()  # nothing selected: the button asks for a checkpoint folder
    page.convert_button.click()
    d = page.convert_dialog
    assert d.source == str(checkpoint) and d.kind == "folder"
    d.quant.setCurrentIndex(d.quant.findData(""))  # no quant: the converted F16 is the result
    assert d.quant.currentText() == "None — keep F16"
    qtbot.waitUntil(d.start_button.isEnabled, timeout=PLAN_TIMEOUT)
    with qtbot.waitSignal(d.ended, timeout=JOB_TIMEOUT) as ended:
        d.start()
    assert ended.args == ["done"], d.outcome_label.text()
    path = d.result.path
    assert Path(path).name == "Tiny-Llama-F16.gguf" and Path(path).parent == Path(d.outdir)
    bar = w.chat_page.model_bar
    with qtbot.waitSignal(bar.loaded, timeout=JOB_TIMEOUT):
        qtbot.mouseClick(d.chat_button, Qt.MouseButton.LeftButton)  # waits for the scan, then loads it
    assert w.current_page_key() == "chat"
    assert os.path.realpath(bar.combo.currentData()) == os.path.realpath(path)
    assert bar.loaded_entry is not None and bar.loaded_entry.id == bar.combo.currentData()


def test_discover_downloads_and_converts_a_safetensors_repo(make_window, qtbot, hub, checkpoint):
    hub.add_repo("acme/Tiny-Llama", {p.name: p for p in checkpoint.iterdir() if p.is_file()})
    w = make_window()
    page = w.discover_page
    w.show_page_key("discover")
    with qtbot.waitSignal(page.repo_shown, timeout=PLAN_TIMEOUT):
        page.open_repo("acme/Tiny-Llama")
    rows = {f.filename: r for r, f in enumerate(page.repo.files)}  # the table's rows, in this order
    assert {"(convert) Q8_0", "(convert) Q4_K_M", "(convert) F16"} <= set(rows)
    page.quants.selectRow(rows["(convert) Q8_0"])
    assert page.download_button.text() == "Download and convert…" and page.download_button.isEnabled()
    assert page.download_button.toolTip() == ""
    qtbot.mouseClick(page.download_button, Qt.MouseButton.LeftButton)
    d = page.convert_dialog
    assert d.source == "acme/Tiny-Llama" and d.kind == "hub" and d.chosen_quant() == "Q8_0"
    assert "Hugging Face repo" in d.source_label.text()
    with qtbot.waitSignal(d.plan_ready, timeout=PLAN_TIMEOUT):
        pass
    weights = (checkpoint / "model.safetensors").stat().st_size
    assert d.plan_label.text().startswith(f"This downloads {format_bytes(weights)}")
    d.close()
    page.quants.selectRow(rows["(convert) F16"])  # F16: converted, not quantized
    qtbot.mouseClick(page.download_button, Qt.MouseButton.LeftButton)
    d = page.convert_dialog
    assert d.chosen_quant() is None
    qtbot.waitUntil(d.start_button.isEnabled, timeout=PLAN_TIMEOUT)
    phases = _run(qtbot, d)
    assert any(t.startswith("Downloading ") for t in phases), phases
    assert Path(d.result.path).name == "Tiny-Llama-F16.gguf"


def test_an_importance_matrix_from_a_text_file_is_computed_and_used(qtbot, open_dialog, checkpoint, tmp_path):
    text = Path(__file__).resolve().parents[2] / "resources" / "compare" / "fidelity-text.txt"
    d = open_dialog(checkpoint, quant="Q4_K_M")
    d.options.choose_imatrix("text", str(text))
    assert d.options.imatrix_file.text() == f"Text: {text}" and d.options.calibration() == str(text)
    qtbot.waitUntil(d.start_button.isEnabled, timeout=PLAN_TIMEOUT)
    phases = _run(qtbot, d)
    assert any(t.startswith("Importance matrix: chunk ") for t in phases), phases
    assert _out_files(tmp_path) == ["Tiny-Llama-Q4_K_M.gguf"], "the computed matrix is not left behind"


def test_a_file_choice_left_without_a_file_goes_back_to_none(qtbot, open_dialog, checkpoint, monkeypatch, tmp_path):
    picked = {"path": ""}
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (picked["path"], ""))
    d = open_dialog(checkpoint, quant="Q4_K_M")
    imatrix = d.options.imatrix
    d.options._imatrix_activated(imatrix.findData("file"))  # the user closes the picker
    assert imatrix.currentData() == "none" and d.request().imatrix is None
    picked["path"] = str(tmp_path / "matrix.gguf")
    d.options._imatrix_activated(imatrix.findData("file"))
    assert imatrix.currentData() == "file" and d.request().imatrix == picked["path"]
    d.quant.setCurrentIndex(d.quant.findData(""))  # no quant: no matrix either
    assert not imatrix.isEnabled() and d.request().imatrix is None and d.keep.text() == "Keep the intermediate F16"
    d.outtype.setCurrentIndex(d.outtype.findData("bf16"))
    assert d.quant.currentText() == "None — keep BF16" and d.request().outtype == "bf16"
