"""What the library holds: one entry per model (or per file that failed to read), and a scan's result."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from desktop_app.core.gguf import ModelInfo

SOURCE_FOLDER, SOURCE_FILE, SOURCE_HF, SOURCE_STARTER = "folder", "file", "hf-cache", "starter"


@dataclass
class LibraryEntry:
    """One model in the library (all shards of a split model), or one file that failed to read."""

    id: str  # absolute path of the first shard
    paths: list[str]
    source: str  # folder | file | hf-cache | starter
    source_label: str  # the folder, "Hugging Face cache", …
    file_bytes: int
    info: ModelInfo | None = None
    error: str | None = None
    repo_id: str | None = None

    @property
    def name(self) -> str:
        if self.info:
            return self.info.name
        return os.path.basename(self.id)

    @property
    def file_name(self) -> str:
        return os.path.basename(self.id)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["info"] = self.info.to_dict() if self.info else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LibraryEntry:
        d = dict(d)
        d["info"] = ModelInfo.from_dict(d["info"]) if d.get("info") else None
        return cls(**d)


@dataclass
class ScanProgress:
    done: int
    total: int
    current: str


@dataclass
class ScanResult:
    entries: list[LibraryEntry]
    folder_problems: list[str] = field(default_factory=list)  # folders that could not be searched
    notices: list[str] = field(default_factory=list)  # e.g. "starter model not installed"
    elapsed_s: float = 0.0
    parsed: int = 0  # headers actually read (the rest came from the cache)

    @property
    def models(self) -> list[LibraryEntry]:
        return [e for e in self.entries if e.error is None]

    @property
    def problems(self) -> list[LibraryEntry]:
        return [e for e in self.entries if e.error is not None]
