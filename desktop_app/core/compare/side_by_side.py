"""The same prompts to two models, answers next to each other, and a blind A/B vote on them.

Answers are greedy (temperature 0, the same settings on both sides), so any difference comes from
the quantization; the first token where the two answers part is marked. One model is loaded at
a time: A answers every prompt, then B does.
"""

from __future__ import annotations

import functools
import json
import math
import random
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from desktop_app.core.compare.runner import CompareCancelled, CompareError
from desktop_app.core.paths import app_paths
from desktop_app.resources import resource_path

GREEDY: dict[str, Any] = dict(temperature=0.0, top_p=1.0, top_k=1, min_p=0.0, repeat_penalty=1.0)
VOTES = ("left", "right", "tie", "both_bad")


@dataclass
class PromptSet:
    name: str
    about: str
    prompts: list[str]
    path: str = ""


def user_prompt_dir() -> Path:
    return app_paths().data_dir / "prompts"


def prompt_sets() -> list[PromptSet]:
    """The sets we ship, then the user's own (JSON files in the data folder's prompts/)."""
    sets = []
    folders = [resource_path("compare/prompts"), user_prompt_dir()]
    for folder in folders:
        for p in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
            try:
                sets.append(load_prompt_set(p))
            except CompareError:
                continue  # a broken file of the user's must not hide the others
    return sets


def load_prompt_set(path: str | Path) -> PromptSet:
    """A JSON file ({"name", "about", "prompts": [...]}) or a text file with one prompt per line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CompareError(f"Cannot read the prompt set {path.name}: {exc}") from exc
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
            prompts = [str(p).strip() for p in data["prompts"] if str(p).strip()]
            name, about = str(data.get("name") or path.stem), str(data.get("about") or "")
        except (ValueError, KeyError, TypeError) as exc:
            raise CompareError(f'{path.name} is not a prompt set: it needs a "prompts" list ({exc}).') from exc
    else:
        prompts = [line.strip() for line in text.splitlines() if line.strip()]
        name, about = path.stem, ""
    if not prompts:
        raise CompareError(f"{path.name} has no prompts.")
    return PromptSet(name, about, prompts, str(path))


def save_user_prompt_set(source: str | Path) -> PromptSet:
    """Copy a user's file into the data folder so it is offered next time."""
    ps = load_prompt_set(source)
    folder = user_prompt_dir()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (Path(source).stem + ".json")
    target.write_text(json.dumps({"name": ps.name, "about": ps.about, "prompts": ps.prompts}, indent=1))
    ps.path = str(target)
    return ps


@dataclass
class Answer:
    text: str
    pieces: list[str]  # the answer token by token, as the engine streamed it
    tokens_per_s: float | None = None


@dataclass
class Pair:
    prompt: str
    a: Answer
    b: Answer

    @property
    def diverge_token(self) -> int | None:
        """Index of the first token where the answers differ (None when they are the same)."""
        for i, (x, y) in enumerate(zip(self.a.pieces, self.b.pieces, strict=False)):  # lengths may differ
            if x != y:
                return i
        return None if len(self.a.pieces) == len(self.b.pieces) else min(len(self.a.pieces), len(self.b.pieces))

    @property
    def diverge_char(self) -> int | None:
        """Character offset (the same in both texts) where they part."""
        i = self.diverge_token
        return None if i is None else len("".join(self.a.pieces[:i]))


def answer_prompts(
    model: str,
    prompts: list[str],
    *,
    max_tokens: int = 160,
    n_ctx: int = 2048,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[Answer]:
    """Load one model in the engine child process and answer each prompt greedily."""
    from desktop_app.core.engine import Sampling, SyncEngine
    from desktop_app.core.engine.engine import EngineError

    answers = []
    try:
        with SyncEngine() as se:
            se.load(model, n_ctx=n_ctx, seed=1)
            for i, prompt in enumerate(prompts):
                if cancel is not None and cancel.is_set():
                    raise CompareCancelled("Cancelled: the answers so far are kept.")
                pieces: list[str] = []
                stats: dict = {}
                for ev in se.stream([{"role": "user", "content": prompt}], Sampling(**GREEDY, max_tokens=max_tokens)):
                    if ev.kind == "token":
                        pieces.extend(ev.data.get("pieces") or [ev.data["text"]])
                    else:
                        stats = ev.data
                answers.append(Answer("".join(pieces), pieces, stats.get("tokens_per_s")))
                if progress:
                    progress(i + 1, len(prompts))
    except EngineError as exc:
        raise CompareError(f"{Path(model).name}: {exc}") from exc
    return answers


def side_by_side(
    model_a: str,
    model_b: str,
    prompts: list[str],
    *,
    max_tokens: int = 160,
    progress: Callable[[str, int, int], None] | None = None,
    cancel: threading.Event | None = None,
) -> list[Pair]:
    """A answers everything, then B does: only one model in memory at a time."""
    got = {}
    for side, model in (("A", model_a), ("B", model_b)):
        got[side] = answer_prompts(model, prompts, max_tokens=max_tokens, cancel=cancel,
                                   progress=functools.partial(progress, side) if progress else None)  # fmt: skip
    return [Pair(p, a, b) for p, a, b in zip(prompts, got["A"], got["B"], strict=True)]


# -- blind A/B ------------------------------------------------------------------------------------
@dataclass
class BlindTrial:
    index: int  # into the pairs
    a_on_left: bool
    vote: str | None = None  # left | right | tie | both_bad

    @property
    def winner(self) -> str | None:
        """ "A", "B", "tie" or "both_bad" once voted."""
        if self.vote in ("tie", "both_bad") or self.vote is None:
            return self.vote
        return "A" if (self.vote == "left") == self.a_on_left else "B"


@dataclass
class BlindSession:
    """The pairs in a shuffled order with shuffled sides; labels stay hidden until the vote."""

    model_a: str
    model_b: str
    trials: list[BlindTrial] = field(default_factory=list)

    @classmethod
    def start(cls, model_a: str, model_b: str, n_pairs: int, seed: int | None = None) -> BlindSession:
        rng = random.Random(seed)
        order = list(range(n_pairs))
        rng.shuffle(order)
        return cls(model_a, model_b, [BlindTrial(i, rng.random() < 0.5) for i in order])

    def current(self) -> BlindTrial | None:
        return next((t for t in self.trials if t.vote is None), None)

    def vote(self, choice: str) -> BlindTrial:
        if choice not in VOTES:
            raise ValueError(f"A vote is one of {', '.join(VOTES)}.")
        trial = self.current()
        if trial is None:
            raise CompareError("Every pair has been voted on.")
        trial.vote = choice
        return trial

    def tally(self) -> dict:
        wins = {"A": 0, "B": 0, "tie": 0, "both_bad": 0}
        for t in self.trials:
            if t.winner is not None:
                wins[t.winner] += 1
        decided = wins["A"] + wins["B"]
        rate, lo, hi = wilson(wins["B"], decided)
        return {"votes": sum(wins.values()), "a_wins": wins["A"], "b_wins": wins["B"], "ties": wins["tie"],
                "both_bad": wins["both_bad"], "b_win_rate": rate, "b_win_rate_ci95": [lo, hi],
                "model_a": self.model_a, "model_b": self.model_b}  # fmt: skip

    def to_dict(self) -> dict:
        return {"tally": self.tally(), "trials": [asdict(t) | {"winner": t.winner} for t in self.trials]}


def wilson(successes: int, n: int, z: float = 1.959964) -> tuple[float | None, float | None, float | None]:
    """A rate and its 95 % Wilson score interval (sound for small counts, unlike p ± 2σ)."""
    if n == 0:
        return None, None, None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return p, max(0.0, centre - half), min(1.0, centre + half)
