"""The Compare page's side-by-side tab: two models answer the same prompts, with blind A/B voting.

The summaries tab, scored by ROUGE, is in compare_tasks."""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSplitter,
    QTextBrowser,
    QVBoxLayout,
    QWidget,
)

from desktop_app.core.compare import CompareError
from desktop_app.core.compare.side_by_side import BlindSession, Pair, prompt_sets, save_user_prompt_set, side_by_side
from desktop_app.core.errors import Cancelled
from desktop_app.core.kinds import ModelKind
from desktop_app.ui import work
from desktop_app.ui.context import AppContext
from desktop_app.ui.widgets import muted

DIVERGE_STYLE = "background:#fde68a;color:#111;font-weight:bold"


def answer_html(pieces: list[str], diverge_token: int | None) -> str:
    """The answer with the first token that differs from the other side marked, and what follows tinted."""
    if diverge_token is None:
        return f"<pre style='white-space:pre-wrap'>{html.escape(''.join(pieces))}</pre>"
    head, tail = "".join(pieces[:diverge_token]), "".join(pieces[diverge_token + 1 :])
    first = pieces[diverge_token] if diverge_token < len(pieces) else "(end)"
    return (f"<pre style='white-space:pre-wrap'>{html.escape(head)}<span style='{DIVERGE_STYLE}'>"
            f"{html.escape(first)}</span><span style='color:#92400e'>{html.escape(tail)}</span></pre>")  # fmt: skip


class _JobOwner:
    """A tab that runs one job at a time and can stop it."""

    job: work.Job | None

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def stop(self) -> None:
        if self.job is not None:
            self.job.cancel()


class SideBySideTab(_JobOwner, QWidget):
    answered = Signal()
    voted = Signal()
    _progress = Signal(str, int, int)

    def __init__(self, ctx: AppContext, page, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx, self.page = ctx, page
        self.pairs: list[Pair] = []
        self.models = ("", "")
        self.blind_session: BlindSession | None = None
        self.job: work.Job | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 6, 0, 0)
        lay.addLayout(self._build_top())
        lay.addLayout(self._build_status())
        lay.addWidget(self._build_split(), 1)
        self._progress.connect(self._on_progress)
        ctx.library_changed.connect(self.refresh_choices)
        self.refresh_choices()
        self._update()

    # -- building ------------------------------------------------------------------------------
    def _build_top(self) -> QHBoxLayout:
        """The prompt set, the two models, Answer and Cancel."""
        top = QHBoxLayout()
        top.addWidget(QLabel("Prompts"))
        self.sets = QComboBox()
        self.sets.setAccessibleName("Prompt set")
        top.addWidget(self.sets, 1)
        add = QPushButton("Add your own…")
        add.setToolTip("A .json prompt set or a text file with one prompt per line; kept for next time")
        add.clicked.connect(self._add_set)
        top.addWidget(add)
        top.addWidget(QLabel("A"))
        self.model_a = QComboBox()
        self.model_a.setAccessibleName("Model A")
        top.addWidget(self.model_a, 1)
        top.addWidget(QLabel("B"))
        self.model_b = QComboBox()
        self.model_b.setAccessibleName("Model B")
        top.addWidget(self.model_b, 1)
        self.run = QPushButton("Answer")
        self.run.setToolTip("Both models answer every prompt greedily (one model loaded at a time)")
        self.run.clicked.connect(self.start)
        self.cancel = QPushButton("Cancel")
        self.cancel.clicked.connect(self.stop)
        top.addWidget(self.run)
        top.addWidget(self.cancel)
        return top

    def _build_status(self) -> QHBoxLayout:
        status = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.status = muted("Pick a prompt set and two models, then Answer.")
        status.addWidget(self.progress)
        status.addWidget(self.status, 1)
        self.blind = QCheckBox("Blind A/B")
        self.blind.setToolTip("Sides shuffled and names hidden until you vote")
        self.blind.toggled.connect(self._blind_toggled)
        status.addWidget(self.blind)
        return status

    def _build_split(self) -> QSplitter:
        """The prompts on the left, the two answers with the votes on the right."""
        split = QSplitter(Qt.Orientation.Horizontal)
        self.prompts = QListWidget()
        self.prompts.currentRowChanged.connect(self._show_pair)
        split.addWidget(self.prompts)
        split.addWidget(self._build_answers())
        split.setSizes([260, 900])
        return split

    def _build_answers(self) -> QWidget:
        answers = QWidget()
        grid = QGridLayout(answers)
        grid.setContentsMargins(0, 0, 0, 0)
        self.left_title, self.right_title = QLabel("A"), QLabel("B")
        for lbl in (self.left_title, self.right_title):
            lbl.setObjectName("cardTitle")
        self.left, self.right = QTextBrowser(), QTextBrowser()
        grid.addWidget(self.left_title, 0, 0)
        grid.addWidget(self.right_title, 0, 1)
        grid.addWidget(self.left, 1, 0)
        grid.addWidget(self.right, 1, 1)
        grid.addLayout(self._build_votes(), 2, 0, 1, 2)
        self.reveal = muted("")
        self.tally = QLabel("")
        self.tally.setWordWrap(True)
        grid.addWidget(self.reveal, 3, 0, 1, 2)
        grid.addWidget(self.tally, 4, 0, 1, 2)
        return answers

    def _build_votes(self) -> QHBoxLayout:
        votes = QHBoxLayout()
        self.vote_buttons = {}
        for key, text in (("left", "Left is better"), ("right", "Right is better"), ("tie", "Tie"),
                          ("both_bad", "Both bad")):  # fmt: skip
            b = QPushButton(text)
            b.clicked.connect(lambda _c=False, k=key: self.vote(k))
            votes.addWidget(b)
            self.vote_buttons[key] = b
        return votes

    # -- choosing ------------------------------------------------------------------------------
    def refresh_choices(self) -> None:
        """The prompt sets on disk and the models in the library (a set saved elsewhere shows up)."""
        current = self.sets.currentData()
        self.sets.clear()
        for s in prompt_sets():
            self.sets.addItem(f"{s.name} ({len(s.prompts)})", s)
            if current is not None and s.path == current.path:
                self.sets.setCurrentIndex(self.sets.count() - 1)
        for combo in (self.model_a, self.model_b):
            keep = combo.currentData()
            combo.clear()
            for e in self.ctx.entries:
                if e.info is not None and e.info.kind == ModelKind.MODEL:
                    combo.addItem(f"{e.info.name} ({e.info.quant})", e.id)
            if keep:
                combo.setCurrentIndex(max(0, combo.findData(keep)))

    def set_models(self, a: str, b: str) -> None:
        self.model_a.setCurrentIndex(self.model_a.findData(a))
        self.model_b.setCurrentIndex(self.model_b.findData(b))

    def _add_set(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add prompts", "", "Prompt sets (*.json *.txt);;All files (*)")
        if not path:
            return
        try:
            ps = save_user_prompt_set(path)
        except (CompareError, OSError) as exc:
            self.ctx.notify(str(exc), "error")
            return
        self.refresh_choices()
        self.sets.setCurrentIndex(max(0, self.sets.findText(f"{ps.name} ({len(ps.prompts)})")))

    def _update(self) -> None:
        running = self.running
        self.run.setEnabled(not running and self.model_a.count() > 0 and self.sets.count() > 0)
        self.cancel.setEnabled(running)
        can_vote = (
            self.blind.isChecked() and self.blind_session is not None and self.blind_session.current() is not None
        )
        for b in self.vote_buttons.values():
            b.setVisible(self.blind.isChecked())
            b.setEnabled(can_vote)

    # -- answering -----------------------------------------------------------------------------
    def start(self) -> None:
        ps, a, b = self.sets.currentData(), self.model_a.currentData(), self.model_b.currentData()
        if ps is None or not a or not b or self.running:
            return
        self.models = (a, b)
        self.progress.setRange(0, 2 * len(ps.prompts))
        self.progress.setValue(0)
        self.status.setText(f"{Path(a).name} answers first, then {Path(b).name}…")
        self.job = work.start(self, side_by_side, a, b, ps.prompts, progress=self._progress.emit, cancellable=True,
                              on_result=self._done, on_error=self._failed, on_finished=self._finished)  # fmt: skip
        self._update()

    def _on_progress(self, side: str, i: int, n: int) -> None:
        self.progress.setValue(i + (n if side == "B" else 0))
        self.status.setText(f"Model {side}: {i} of {n} answers")

    def _done(self, pairs: list[Pair]) -> None:
        self.pairs = pairs
        same = sum(p.diverge_token is None for p in pairs)
        self.status.setText(f"{len(pairs)} prompts answered; {same} identical, {len(pairs) - same} differ "
                            "(the first differing token is marked).")  # fmt: skip
        self.prompts.clear()
        for p in pairs:
            mark = "=" if p.diverge_token is None else "≠"
            self.prompts.addItem(f"{mark} {p.prompt}")
        self.blind_session = None
        if self.blind.isChecked():
            self._start_blind()
        self.prompts.setCurrentRow(0)

    def _failed(self, exc: Exception) -> None:
        self.status.setText(str(exc))
        if not isinstance(exc, Cancelled):
            self.ctx.notify(f"Side by side stopped: {exc}", "error")

    def _finished(self) -> None:
        self._update()
        self.page._update_buttons()
        self.answered.emit()

    # -- showing and voting --------------------------------------------------------------------
    def _blind_toggled(self, on: bool) -> None:
        if on and self.pairs and self.blind_session is None:
            self._start_blind()
        self._show_current()

    def _start_blind(self) -> None:
        self.blind_session = BlindSession.start(*self.models, len(self.pairs))
        self.reveal.setText("")
        self._show_tally()

    def _show_current(self) -> None:
        if self.blind.isChecked() and self.blind_session is not None:
            trial = self.blind_session.current()
            if trial is not None:
                self.prompts.blockSignals(True)
                self.prompts.setCurrentRow(trial.index)
                self.prompts.blockSignals(False)
                self._show_pair(trial.index)
        else:
            self._show_pair(self.prompts.currentRow())
        self._update()

    def _show_pair(self, row: int) -> None:
        if not (0 <= row < len(self.pairs)):
            return
        p = self.pairs[row]
        cut = p.diverge_token
        a_html, b_html = answer_html(p.a.pieces, cut), answer_html(p.b.pieces, cut)
        names = (Path(self.models[0]).name, Path(self.models[1]).name)
        if self.blind.isChecked() and self.blind_session is not None:
            trial = next(t for t in self.blind_session.trials if t.index == row)
            left, right = (a_html, b_html) if trial.a_on_left else (b_html, a_html)
            if trial.vote is None:
                titles = ("Left", "Right")
            else:
                titles = (f"Left: {names[0] if trial.a_on_left else names[1]}",
                          f"Right: {names[1] if trial.a_on_left else names[0]}")  # fmt: skip
        else:
            left, right, titles = a_html, b_html, (f"A: {names[0]}", f"B: {names[1]}")
        self.left_title.setText(titles[0])
        self.right_title.setText(titles[1])
        self.left.setHtml(f"<p><b>{html.escape(p.prompt)}</b></p>{left}")
        self.right.setHtml(f"<p><b>{html.escape(p.prompt)}</b></p>{right}")
        self._update()

    def vote(self, choice: str) -> None:
        if self.blind_session is None or self.blind_session.current() is None:
            return
        trial = self.blind_session.vote(choice)
        names = {"A": Path(self.models[0]).name, "B": Path(self.models[1]).name}
        verdict = {"tie": "a tie", "both_bad": "both bad"}.get(trial.winner) or f"{names[trial.winner]} better"
        self.reveal.setText(f"You voted {verdict}. Left was {'A' if trial.a_on_left else 'B'} "
                            f"({names['A'] if trial.a_on_left else names['B']}).")  # fmt: skip
        self._show_tally()
        self._show_current()
        self.voted.emit()

    def _show_tally(self) -> None:
        t = self.blind_session.tally() if self.blind_session else None
        if not t or not t["votes"]:
            self.tally.setText("Vote on each pair; the names show after each vote.")
            return
        rate = t["b_win_rate"]
        rate_text = ("no decided votes yet" if rate is None else
                     f"B wins {rate * 100:.0f} % of decided votes (95 % CI {t['b_win_rate_ci95'][0] * 100:.0f}–"
                     f"{t['b_win_rate_ci95'][1] * 100:.0f} %)")  # fmt: skip
        left = sum(1 for tr in self.blind_session.trials if tr.vote is None)
        more = f" {left} to go." if left else " All done."
        votes = f"{t['votes']} vote" + ("s" if t["votes"] != 1 else "")
        self.tally.setText(f"{votes}: A better {t['a_wins']}, B better {t['b_wins']}, ties {t['ties']}, "
                           f"both bad {t['both_bad']}; {rate_text}.{more}")  # fmt: skip

    def busy(self) -> list[str]:
        return ["Side-by-side answers"] if self.running else []

    def shutdown(self) -> None:
        self.stop()

    def export(self) -> dict:
        out = {}
        if self.pairs:
            out["side_by_side"] = {"model_a": self.models[0], "model_b": self.models[1], "pairs": [
                {"prompt": p.prompt, "a": p.a.text, "b": p.b.text, "diverge_token": p.diverge_token}
                for p in self.pairs]}  # fmt: skip
        if self.blind_session is not None:
            out["blind"] = self.blind_session.tally()
        return out
