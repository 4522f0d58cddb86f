"""The Compare page runs a real comparison on the starter model, shows it, and exports it."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt


def test_compare_page_runs_shows_and_exports(make_window, qtbot, starter_path, tmp_path):
    w = make_window()
    w.show_page_key("compare")
    page = w.compare_page
    qtbot.waitUntil(lambda: page.reference.count() >= 1, timeout=30_000)
    assert "itself quantized (Q4_1)" in page.ref_warning.text()  # the starter is no reference-grade file
    assert not page.run_button.isEnabled()  # no candidate ticked yet
    page.set_selection(starter_path, [starter_path])
    assert page.run_button.isEnabled() and page.candidate_paths() == [starter_path]
    page.n_ctx.setValue(128)
    page.chunks.setValue(2)
    with qtbot.waitSignal(page.finished, timeout=120_000) as sig:
        page.start()
        assert page.cancel_button.isEnabled() and not page.run_button.isEnabled()
    comparison = sig.args[0]
    assert not page.busy() and page.run_button.isEnabled()
    assert page.table.rowCount() == 2 and "(reference)" in page.table.item(0, 0).text()
    assert page.table.item(1, 6).text() == "100.00 %"  # the same file: the same top token every time
    assert page.status.text().startswith("Done: 2 chunks of 128 tokens")
    qtbot.waitUntil(lambda: page.export_html.isEnabled(), timeout=10_000)
    page.export_to(str(tmp_path / "r.html"), "html")
    page.export_to(str(tmp_path / "r.json"), "json")
    qtbot.waitUntil(lambda: (tmp_path / "r.json").exists() and (tmp_path / "r.html").exists(), timeout=10_000)
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["chunks"] == 2 and len(data["models"]) == 2 and comparison.n_ctx == 128
    assert (tmp_path / "r.html").read_text().count("<svg") == 3


def test_compare_page_cancel_keeps_what_was_measured(make_window, qtbot, starter_path):
    w = make_window()
    page = w.compare_page
    qtbot.waitUntil(lambda: page.reference.count() >= 1, timeout=30_000)
    page.set_selection(starter_path, [starter_path])
    page.n_ctx.setValue(128)
    page.chunks.setValue(30)

    def cancel_in_candidate(p):
        if p.role == "candidate" and p.chunk == 1:
            page.cancel()

    page.progressed.connect(cancel_in_candidate, Qt.ConnectionType.QueuedConnection)
    with qtbot.waitSignal(page.finished, timeout=120_000) as sig:
        page.start()
    assert sig.args[0].cancelled and page.status.text().startswith("Cancelled") and not page.busy()
    assert "(partial)" in page.table.item(1, 0).text()


def test_side_by_side_blind_votes_and_summaries(make_window, qtbot, starter_path, tmp_path, monkeypatch):
    from desktop_app.core.compare import side_by_side as sbs
    from desktop_app.core.compare import tasks

    mine = tmp_path / "two.txt"
    mine.write_text("Name two colors.\nWhat is 3 + 4?\n")
    sbs.save_user_prompt_set(mine)
    w = make_window()
    w.show_page_key("compare")
    page = w.compare_page
    tab = page.side_tab
    tab.refresh_choices()  # the prompt set was saved after the window opened
    tab.sets.setCurrentIndex(tab.sets.findText("two (2)"))
    tab.set_models(starter_path, starter_path)
    tab.blind.setChecked(True)
    with qtbot.waitSignal(tab.answered, timeout=120_000):
        tab.start()
    assert tab.prompts.count() == 2 and tab.prompts.item(0).text().startswith("=")  # greedy, same model
    assert tab.left_title.text() == "Left" and tab.vote_buttons["left"].isEnabled()  # names hidden
    tab.vote("left")
    assert "Left was" in tab.reveal.text() and "1 to go" in tab.tally.text()
    tab.vote("tie")
    assert "All done" in tab.tally.text() and not tab.vote_buttons["left"].isEnabled()
    assert tab.export()["blind"]["votes"] == 2
    assert page.export_html.isEnabled()  # answers and votes export without a fidelity run
    page.export_to(str(tmp_path / "ab.html"), "html")
    qtbot.waitUntil(lambda: (tmp_path / "ab.html").exists(), timeout=10_000)
    assert "Blind A/B" in (tmp_path / "ab.html").read_text() and "Side by side" in (tmp_path / "ab.html").read_text()
    # summaries: reference and the ticked candidate (the same file), scored by the shipped ROUGE module
    page.set_selection(starter_path, [starter_path])
    real = tasks.load_summary_set
    monkeypatch.setattr(tasks, "load_summary_set", lambda path=None: {**real(path), "items": real(path)["items"][:1]})
    page.tabs.setCurrentWidget(page.tasks_tab)
    with qtbot.waitSignal(page.tasks_tab.scored, timeout=120_000):
        page.tasks_tab.start()
    assert page.tasks_tab.table.rowCount() == 2 and page.tasks_tab.table.item(1, 4).text() == "1.000"


def test_make_quants_of_the_starter_lands_them_in_the_library(make_window, qtbot, starter_path):
    w = make_window()
    page = w.compare_page
    qtbot.waitUntil(lambda: page.reference.count() >= 1, timeout=30_000)
    page.reference.setCurrentIndex(page.reference.findData(starter_path))
    with qtbot.waitSignal(page.made, timeout=300_000):
        page.make_quants(["Q8_0"])
    folder = w.ctx.paths.data_dir / "quants"
    assert (folder / "SmolLM2-135M-Instruct-Q8_0.gguf").stat().st_size > 100_000_000
    assert str(folder) in w.ctx.settings.model_folders
    qtbot.waitUntil(lambda: page.reference.count() == 2, timeout=60_000)
    assert any("(Q8_0," in page.reference.itemText(i) for i in range(2))
