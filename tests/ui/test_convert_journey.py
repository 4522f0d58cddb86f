"""The convert journey end to end, as a user drives it in the real window: find a safetensors-only repo on
Discover, pick "(convert) Q4_K_M", download and convert it with an importance matrix computed from a
text file, then chat with the result.

The repo is the starter model (SmolLM2-135M-Instruct) rebuilt as the Hugging Face checkpoint it was
converted from, served by the local Hub stand-in. Set QUANTDESK_JOURNEY_SHOTS to a folder to keep a
screenshot of each step.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from gguf import GGUFReader
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QTableWidget, QWidget

from desktop_app.core.quantize import quantize
from desktop_app.core.units import format_bytes
from desktop_app.ui.pages.discover_page import BADGES
from tests.hf_factory import starter_checkpoint

pytestmark = pytest.mark.slow

REPO = "HuggingFaceTB/SmolLM2-135M-Instruct"
CALIBRATION = Path(__file__).resolve().parents[2] / "resources" / "calibration" / "calibration.txt"
CALIBRATION_BYTES = 8 * 1024  # four chunks of 512 tokens (llama-imatrix needs two)
Q4_K_M_FILE_TYPE = 15  # llama.cpp's LLAMA_FTYPE_MOSTLY_Q4_K_M
HUB_TIMEOUT = 60_000
JOB_TIMEOUT = 300_000
CHAT_TIMEOUT = 120_000
LAYOUT_TIMEOUT = 2_000  # a window lays itself out again once the event loop runs


def _shot(widget: QWidget, name: str) -> None:
    """A screenshot of ``widget`` into $QUANTDESK_JOURNEY_SHOTS (nothing when it is not set)."""
    folder = os.environ.get("QUANTDESK_JOURNEY_SHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        assert widget.grab().save(os.path.join(folder, f"{name}.png"))


def _laid_out(d) -> bool:
    """The dialog is tall enough for its word-wrapped lines: no row is squeezed over another."""
    combo = d.options.imatrix
    return d.height() >= d.heightForWidth(d.width()) and combo.height() >= combo.sizeHint().height()


def _click_row(qtbot, table: QTableWidget, row: int) -> None:
    """Scroll the row into view and click it, as a user does."""
    item = table.item(row, 0)
    table.scrollToItem(item)
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=table.visualItemRect(item).center())


@pytest.fixture
def smollm_repo(hub, starter_path, tmp_path) -> Path:
    """The starter as a safetensors-only checkpoint on the Hub stand-in; returns its folder."""
    f16 = tmp_path / "starter-F16.gguf"
    quantize(starter_path, str(f16), "F16")  # dequantizes the starter's Q4_1
    folder = starter_checkpoint(tmp_path / "SmolLM2-135M-Instruct", str(f16))
    f16.unlink()
    hub.add_repo(REPO, {p.name: p for p in folder.iterdir() if p.is_file()}, downloads=5000, likes=50,
                 params=134_515_008)  # fmt: skip
    return folder


def test_a_safetensors_repo_is_found_converted_with_an_imatrix_and_chatted_with(
    make_window, qtbot, smollm_repo, tmp_path, monkeypatch
):
    calibration = tmp_path / "calibration.txt"
    calibration.write_bytes(CALIBRATION.read_bytes()[:CALIBRATION_BYTES])
    asked: list[str] = []

    def pick(_parent, title: str, *_args, **_kwargs) -> tuple[str, str]:  # the user picks the text file
        asked.append(title)
        return str(calibration), ""

    monkeypatch.setattr(QFileDialog, "getOpenFileName", pick)

    # Discover: search (the repo has no GGUF files, so "GGUF only" goes off), open it, see the convert rows
    w = make_window()
    page = w.discover_page
    w.show_page_key("discover")
    with qtbot.waitSignal(page.results_shown, timeout=HUB_TIMEOUT):
        qtbot.mouseClick(page.gguf_only, Qt.MouseButton.LeftButton)
        qtbot.keyClicks(page.query, "SmolLM2")
    assert not page.gguf_only.isChecked()
    assert page.results.rowCount() == 1 and page.results.item(0, 0).text() == REPO
    assert page.results.item(0, 1).text() == "135M"
    with qtbot.waitSignal(page.repo_shown, timeout=HUB_TIMEOUT):
        _click_row(qtbot, page.results, 0)
    assert "No GGUF files here" in page.repo_meta.text()
    rows = {f.filename: r for r, f in enumerate(page.repo.files)}  # the table's rows, in this order
    assert {"(convert) Q4_K_M", "(convert) Q8_0", "(convert) F16"} <= set(rows), sorted(rows)
    row = rows["(convert) Q4_K_M"]
    assert page.quants.item(row, 0).text().rstrip(" ★") == "Q4_K_M"
    size, badge = page.quants.item(row, 2).text(), page.quants.item(row, 5).text()
    fits = {text for verdict, (text, _color) in BADGES.items() if verdict.name != "TOO_LARGE"}
    assert size.endswith("MB") and badge in fits, (size, badge)
    _click_row(qtbot, page.quants, row)
    assert page.download_button.text() == "Download and convert…" and page.download_button.isEnabled()
    _shot(w, "1-discover")
    qtbot.mouseClick(page.download_button, Qt.MouseButton.LeftButton)

    # the dialog: Q4_K_M chosen; an importance matrix computed from a text file the user picks
    d = page.convert_dialog
    assert d is not None and d.isVisible() and d.source == REPO and d.kind == "hub"
    assert d.quant.currentText() == "Q4_K_M" and d.chosen_quant() == "Q4_K_M"
    outdir = Path(d.outdir)
    assert outdir.is_relative_to(tmp_path), "the isolated data dir: output stays in tmp"
    imatrix = d.options.imatrix
    imatrix.setFocus()
    qtbot.keyClick(imatrix, Qt.Key.Key_End)  # the last entry, "Compute from a text file…": its picker opens
    assert imatrix.currentText() == "Compute from a text file…" and asked == ["Choose a calibration text"]
    assert d.options.imatrix_file.text() == f"Text: {calibration}"
    qtbot.waitUntil(d.start_button.isEnabled, timeout=HUB_TIMEOUT)
    weights = (smollm_repo / "model.safetensors").stat().st_size
    assert d.plan_label.text().startswith(f"This downloads {format_bytes(weights)} to the Hugging Face cache"), (
        d.plan_label.text()
    )
    qtbot.waitUntil(lambda: _laid_out(d), timeout=LAYOUT_TIMEOUT)  # it grew for the calibration file's path
    _shot(d, "2-dialog-before-start")

    phases: list[str] = []  # the phase line under the progress bar, each time the job reports
    d.progressed.connect(lambda _p: phases.append(d.phase.text()))
    with qtbot.waitSignal(d.ended, timeout=JOB_TIMEOUT) as ended:
        qtbot.mouseClick(d.start_button, Qt.MouseButton.LeftButton)
    assert ended.args == ["done"], d.outcome_label.text()
    kinds = {"Downloading ": "download", "Converting ": "convert", "Importance matrix: chunk ": "imatrix",
             "Quantizing ": "quantize"}  # fmt: skip
    seen = [next((k for p, k in kinds.items() if t.startswith(p)), t) for t in phases]
    order = list(dict.fromkeys(seen))
    assert order == ["download", "convert", "imatrix", "quantize"], order
    chunks = [t for t in phases if t.startswith("Importance matrix: chunk ")]
    last = re.fullmatch(r"Importance matrix: chunk (\d+) of \1", chunks[-1] if chunks else "")
    assert last and int(last[1]) >= 2, chunks
    result = Path(d.result.path)
    assert result == outdir / "SmolLM2-135M-Instruct-Q4_K_M.gguf" and result.is_file()
    assert sorted(p.name for p in outdir.iterdir()) == [result.name], "no F16 or matrix is left behind"
    reader = GGUFReader(str(result))
    assert reader.fields["general.file_type"].contents() == Q4_K_M_FILE_TYPE
    assert reader.fields["general.name"].contents() == "SmolLM2-135M-Instruct", "the repo's name, not a commit hash"
    assert "quantize.imatrix.file" in reader.fields
    assert f"Done: {result}" in d.outcome_label.text() and format_bytes(result.stat().st_size) in d.outcome_label.text()
    assert d.chat_button.isVisible()
    qtbot.waitUntil(lambda: _laid_out(d), timeout=LAYOUT_TIMEOUT)  # it grew for the progress bar and the outcome
    _shot(d, "3-dialog-done")

    # Chat with it: the model loads, and answers
    chat = w.chat_page
    bar = chat.model_bar
    with qtbot.waitSignal(bar.loaded, timeout=CHAT_TIMEOUT):
        qtbot.mouseClick(d.chat_button, Qt.MouseButton.LeftButton)  # the dialog closes; Chat loads the model
    assert w.current_page_key() == "chat"
    assert os.path.realpath(bar.combo.currentData()) == os.path.realpath(result)
    assert bar.loaded_entry is not None and bar.loaded_entry.info.quant == "Q4_K_M"
    assert "loaded in" in bar.status.text(), bar.status.text()
    chat.settings_panel.preset.setCurrentText("Precise")  # greedy: the same answer every run
    chat.settings_panel.max_tokens.setValue(48)
    qtbot.keyClicks(chat.input, "Say hello.")
    with qtbot.waitSignal(chat.answer_finished, timeout=CHAT_TIMEOUT):
        qtbot.mouseClick(chat.send_button, Qt.MouseButton.LeftButton)
    [question, answer] = chat.conv.messages
    assert question.role == "user" and question.content == "Say hello."
    assert answer.role == "assistant" and answer.content.strip(), answer
    shown = chat.transcript.toPlainText().partition("Assistant")[2]
    words = re.findall(r"[A-Za-z]{2,}", answer.content)
    assert words and all(word in shown for word in words[:3]), (answer.content, shown)
    _shot(w, "4-chat")
