"""Discover and downloads against the local Hub stand-in, in the real window."""

from __future__ import annotations

import os

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from tests.gguf_factory import Q, write_model_header

TIMEOUT = 60_000


@pytest.fixture
def hub_repos(hub, starter_path, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("---\nlicense: apache-2.0\n---\n# SmolLM2 GGUF\n\nA tiny model.\n")
    big = write_model_header(tmp_path / "big-F16.gguf", n_layers=32, n_vocab=128256, n_embd=4096, n_head=32,
                             n_head_kv=8, n_ff=14336, quant=Q.F16)  # fmt: skip
    hub.add_repo("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF",
                 {"smollm2-135m-instruct-q4_1.gguf": starter_path, "smollm2-135m-instruct-f16.gguf": big,
                  "README.md": readme}, downloads=5000, likes=50, params=134_515_008)  # fmt: skip
    hub.add_repo("other/Thing-GGUF", {"thing-Q8_0.gguf": starter_path}, downloads=10, likes=999, params=1000)
    return hub


def _discover(make_window, qtbot):
    w = make_window()
    w.show_page_key("discover")
    return w, w.discover_page


def test_search_as_you_type_then_open_a_repo(make_window, qtbot, hub_repos):
    w, page = _discover(make_window, qtbot)
    with qtbot.waitSignal(page.results_shown, timeout=TIMEOUT):
        qtbot.keyClicks(page.query, "smol")  # one search after typing stops (debounced)
    assert page.results.rowCount() == 1 and page.results.item(0, 0).text().startswith("HuggingFaceTB/SmolLM2")
    assert page.results.item(0, 1).text() == "135M"
    with qtbot.waitSignal(page.results_shown, timeout=TIMEOUT):
        page.query.clear()
    with qtbot.waitSignal(page.results_shown, timeout=TIMEOUT):
        page.sort.setCurrentIndex(page.sort.findData("likes"))
    assert page.results.item(0, 0).text() == "other/Thing-GGUF"
    with qtbot.waitSignal(page.repo_shown, timeout=TIMEOUT):
        page.open_repo("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF")
    rows = {page.quants.item(r, 0).text().rstrip(" ★"): page.quants.item(r, 5).text()
            for r in range(page.quants.rowCount())}  # fmt: skip
    assert rows["Q4_1"] == "CPU only"
    assert page.recommend.text().startswith("★ ") and "license: apache-2.0" in page.repo_meta.text().lower()
    ram_4k = page.quants.item(0, 3).text()
    page.ctx_slider.setValue(8)  # 8k context: more RAM for the KV cache, no new requests
    assert page.quants.item(0, 3).text() != ram_4k
    assert "SmolLM2 GGUF" in page.card.toPlainText()


def test_download_pause_resume_and_it_lands_in_the_library(make_window, qtbot, hub_repos):
    w, page = _discover(make_window, qtbot)
    with qtbot.waitSignal(page.repo_shown, timeout=TIMEOUT):
        page.open_repo("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF")
    row = next(r for r in range(page.quants.rowCount()) if page.quants.item(r, 0).text().startswith("Q4_1"))
    page.quants.selectRow(row)
    hub_repos.throttle_bps = 30 * 1024 * 1024
    qtbot.mouseClick(page.download_button, Qt.MouseButton.LeftButton)
    [task] = page.downloads.tasks
    qtbot.waitUntil(lambda: task.bytes_done > 10 * 1024 * 1024, timeout=TIMEOUT)
    page.downloads.pause(task)
    qtbot.waitUntil(lambda: task.state == "paused" and page.downloads._active is None, timeout=TIMEOUT)
    kept = task.bytes_done
    hub_repos.throttle_bps = 0
    with qtbot.waitSignal(page.downloads.completed, timeout=TIMEOUT):
        page.downloads.resume(task)
    assert task.state == "done" and task.phase == "verified"
    # the kept part was not fetched again (the server counts bytes it wrote, some never read before the pause)
    assert hub_repos.served["smollm2-135m-instruct-q4_1.gguf"] < 98_362_432 + kept
    qtbot.waitUntil(lambda: any(e.repo_id == "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF" for e in w.ctx.entries),
                    timeout=TIMEOUT)  # fmt: skip
    assert "in your library" in w.messages.label.text()


def test_paused_download_survives_a_restart(make_window, qtbot, hub_repos, monkeypatch):
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a: asked.append(a[2]) or QMessageBox.StandardButton.Yes)
    w, page = _discover(make_window, qtbot)
    hub_repos.throttle_bps = 30 * 1024 * 1024
    task = page.downloads.add("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", ["smollm2-135m-instruct-q4_1.gguf"], "Q4_1",
                              98_362_432)  # fmt: skip
    qtbot.waitUntil(lambda: task.bytes_done > 5 * 1024 * 1024, timeout=TIMEOUT)
    w.close()  # quits mid-download: the queue and the partial file stay
    assert asked and "Downloading Q4_1 of HuggingFaceTB/SmolLM2-135M-Instruct-GGUF" in asked[0]
    hub_repos.throttle_bps = 0
    w2 = make_window()
    [again] = w2.downloads.tasks
    assert again.repo_id == task.repo_id
    qtbot.waitUntil(lambda: again.state == "done", timeout=TIMEOUT)
    assert hub_repos.served["smollm2-135m-instruct-q4_1.gguf"] < 2 * 98_362_432  # resumed, not restarted
    # in the library, ready to chat
    real = os.path.realpath(again.path)
    qtbot.waitUntil(lambda: any(os.path.realpath(e.id) == real for e in w2.ctx.entries), timeout=TIMEOUT)
    entry = next(e for e in w2.ctx.entries if os.path.realpath(e.id) == real)
    assert entry.info is not None and entry.info.quant == "Q4_1"


def test_offline_is_said_once_and_local_features_keep_working(make_window, qtbot, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    w, page = _discover(make_window, qtbot)
    with qtbot.waitSignal(page.results_shown, timeout=TIMEOUT):
        page.search()
    assert page.status.text().startswith("Offline")
    assert w.messages.level == "warning" and "Cannot reach" in w.messages.label.text()
    w.messages.dismiss()
    with qtbot.waitSignal(page.results_shown, timeout=TIMEOUT):
        page.search()
    assert not w.messages.isVisible()  # not said again
    assert w.models_page.model.rowCount() == 1  # the starter model is still there
