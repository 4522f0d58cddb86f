"""Split GGUF models: the names llama.cpp's ``gguf-split`` gives the parts, and grouping parts into models.

A model too large for one file is ``<stem>-00001-of-00003.gguf``, ``…-00002-of-00003.gguf``, …; the
first part holds the metadata, every part holds tensors. Local paths and Hub file names (always
``/``) both work: a name keeps its own folder prefix and separator.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

SPLIT_RE = re.compile(r"^(?P<stem>.+)-(?P<no>\d{5})-of-(?P<total>\d{5})\.gguf$", re.IGNORECASE)
T = TypeVar("T")


@dataclass(frozen=True)
class SplitName:
    folder: str  # everything before the file name, separator included ("" for a bare name)
    stem: str
    no: int  # from 1
    total: int

    def part(self, no: int) -> str:
        return f"{self.folder}{self.stem}-{no:05d}-of-{self.total:05d}.gguf"


def _cut(name: str) -> tuple[str, str]:
    i = max(name.rfind("/"), name.rfind(os.sep))
    return name[: i + 1], name[i + 1 :]


def parse_split(name: str) -> SplitName | None:
    """The parts of a split file's name; None for a single-file model."""
    folder, base = _cut(name)
    m = SPLIT_RE.match(base)
    if not m:
        return None
    return SplitName(folder, m.group("stem"), int(m.group("no")), int(m.group("total")))


def part_names(name: str) -> list[str]:
    """Every part of the model ``name`` belongs to, first to last (``[name]`` for a single file)."""
    split = parse_split(name)
    return [split.part(i) for i in range(1, split.total + 1)] if split else [name]


def is_first_part(name: str) -> bool:
    """A single-file model or the first part of a split one (what a user opens)."""
    split = parse_split(name)
    return split is None or split.no == 1


def model_stem(name: str) -> str:
    """The model's name from a file name: without the folder, the part suffix and ``.gguf``."""
    split = parse_split(name)
    if split:
        return split.stem
    return re.sub(r"\.gguf$", "", _cut(name)[1], flags=re.IGNORECASE)


def missing_parts(names: Iterable[str]) -> list[int]:
    """The part numbers absent from ``names`` (all parts of one split model)."""
    splits = [s for s in map(parse_split, names) if s]
    if not splits:
        return []
    present = {s.no for s in splits}
    return [n for n in range(1, splits[0].total + 1) if n not in present]


def group_parts(items: Iterable[T], name_of: Callable[[T], str]) -> list[list[T]]:
    """Items grouped by model, in order of first appearance: the parts of a split model together
    (ordered by part number), every other item alone."""
    groups: dict[tuple[str, ...], list[tuple[int, T]]] = {}
    for item in items:
        name = name_of(item)
        split = parse_split(name)
        key = (split.folder, split.stem, str(split.total)) if split else (name,)
        groups.setdefault(key, []).append((split.no if split else 0, item))
    return [[item for _no, item in sorted(parts, key=lambda p: p[0])] for parts in groups.values()]
