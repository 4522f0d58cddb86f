"""Side-by-side answers, blind A/B votes, prompt sets and ROUGE through the shipped evaluate module."""

from __future__ import annotations

import json

import pytest

from desktop_app.core.compare import CompareError
from desktop_app.core.compare.side_by_side import (
    Answer,
    BlindSession,
    Pair,
    load_prompt_set,
    prompt_sets,
    save_user_prompt_set,
    side_by_side,
    wilson,
)
from desktop_app.core.compare.tasks import load_summary_set, rouge, summarize_and_score


def test_shipped_and_user_prompt_sets(tmp_path):
    names = [s.name for s in prompt_sets()]
    assert names == ["Everyday questions", "Reasoning and code"]
    assert all(len(s.prompts) >= 8 for s in prompt_sets())
    mine = tmp_path / "mine.txt"
    mine.write_text("First question?\n\n  Second question?  \n")
    saved = save_user_prompt_set(mine)
    assert saved.prompts == ["First question?", "Second question?"]
    assert [s.name for s in prompt_sets()][-1] == "mine"
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"questions": ["x"]}))
    with pytest.raises(CompareError, match='needs a "prompts" list'):
        load_prompt_set(broken)
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(CompareError, match="has no prompts"):
        load_prompt_set(tmp_path / "empty.txt")


def test_first_divergence():
    same = Pair("q", Answer("ab", ["a", "b"]), Answer("ab", ["a", "b"]))
    assert same.diverge_token is None and same.diverge_char is None
    parted = Pair("q", Answer("The cat sat", ["The", " cat", " sat"]), Answer("The dog sat", ["The", " dog", " sat"]))
    assert parted.diverge_token == 1 and parted.diverge_char == 3
    shorter = Pair("q", Answer("ab", ["a", "b"]), Answer("abc", ["a", "b", "c"]))
    assert shorter.diverge_token == 2 and shorter.diverge_char == 2


def test_blind_votes_map_back_to_the_models():
    s = BlindSession.start("a.gguf", "b.gguf", 6, seed=7)
    assert sorted(t.index for t in s.trials) == list(range(6))  # every pair once, shuffled
    assert len({t.a_on_left for t in s.trials}) == 2  # sides are shuffled too
    for choice in ("left", "right", "tie", "both_bad", "left", "left"):
        trial = s.vote(choice)
        if choice in ("left", "right"):
            assert trial.winner == ("A" if (choice == "left") == trial.a_on_left else "B")
    t = s.tally()
    assert t["votes"] == 6 and t["ties"] == 1 and t["both_bad"] == 1 and t["a_wins"] + t["b_wins"] == 4
    lo, hi = t["b_win_rate_ci95"]
    assert 0.0 <= lo <= t["b_win_rate"] <= hi <= 1.0
    with pytest.raises(CompareError, match="Every pair"):
        s.vote("left")
    with pytest.raises(ValueError):
        BlindSession.start("a", "b", 1).vote("maybe")
    p, lo, hi = wilson(8, 10)
    assert p == 0.8 and lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson(0, 0) == (None, None, None)


def test_rouge_runs_offline_from_the_shipped_module(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # no Hub
    scores = rouge(["the cat sat on the mat", "hello there"], ["the cat is on the mat", "hello world"])
    assert scores["rouge1"] == pytest.approx((5 / 6 + 0.5) / 2)
    assert scores["rougeL"] == pytest.approx((5 / 6 + 0.5) / 2) and scores["rouge2"] == pytest.approx(0.3)
    assert len(load_summary_set()["items"]) == 6


def test_real_side_by_side_and_summaries(starter_path, tmp_path):
    pairs = side_by_side(starter_path, starter_path, ["Name three colors.", "What is 2 + 2?"], max_tokens=24)
    assert len(pairs) == 2 and all(p.a.text and p.diverge_token is None for p in pairs)  # greedy: identical
    small = tmp_path / "s.json"
    data = load_summary_set()
    small.write_text(json.dumps({"instruction": data["instruction"],
                                 "items": [{"text": t, "summary": s} for t, s in data["items"][:2]]}))  # fmt: skip
    results = summarize_and_score(starter_path, [starter_path], summary_set=str(small), max_tokens=48)
    ref, cand = results
    assert ref.role == "reference" and len(ref.summaries) == 2 and 0 < ref.vs_written["rouge1"] <= 1
    assert cand.vs_reference["rouge1"] == pytest.approx(1.0)  # the same model, greedy: the same summaries
