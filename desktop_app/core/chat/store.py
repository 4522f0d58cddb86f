"""Conversations in SQLite (WAL, schema versioned with user_version), written as answers stream.

A message may have several variants (regenerated answers); the conversation shows the chosen one.
Each conversation records the model file (path and fingerprint), quant, llama.cpp version and the
settings it ran with, so an exported answer says exactly where it came from.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop_app.core.paths import app_paths
from desktop_app.core.sqlite_store import open_database

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    system_prompt TEXT NOT NULL DEFAULT '',
    model_path TEXT NOT NULL DEFAULT '',
    model_fingerprint TEXT NOT NULL DEFAULT '',
    quant TEXT NOT NULL DEFAULT '',
    llama_cpp_version TEXT NOT NULL DEFAULT '',
    settings TEXT NOT NULL DEFAULT '{}',
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    role TEXT NOT NULL,
    variants TEXT NOT NULL,
    chosen INTEGER NOT NULL DEFAULT 0,
    stats TEXT NOT NULL DEFAULT '[]',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_conversation ON messages (conversation_id, position);
"""


@dataclass
class Message:
    role: str  # system | user | assistant
    variants: list[str]
    chosen: int = 0
    stats: list[dict[str, Any]] = field(default_factory=list)  # per variant: ttft_s, tokens_per_s, …
    id: int | None = None

    @property
    def content(self) -> str:
        return self.variants[self.chosen] if self.variants else ""

    @property
    def stat(self) -> dict[str, Any]:
        return self.stats[self.chosen] if self.chosen < len(self.stats) else {}


@dataclass
class Conversation:
    id: int | None
    title: str
    system_prompt: str = ""
    model_path: str = ""
    model_fingerprint: str = ""
    quant: str = ""
    llama_cpp_version: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    created_at: float = 0.0
    updated_at: float = 0.0

    def chat_messages(self) -> list[dict[str, str]]:
        """The messages as llama.cpp's chat template wants them (chosen variants, system first)."""
        out = [{"role": "system", "content": self.system_prompt}] if self.system_prompt.strip() else []
        out += [{"role": m.role, "content": m.content} for m in self.messages if m.content or m.role == "user"]
        return out


_last_id = 0
_id_lock = threading.Lock()


def new_conversation_id() -> int:
    """A unique id without asking the database: microseconds since the epoch, strictly increasing."""
    global _last_id
    with _id_lock:
        _last_id = max(_last_id + 1, time.time_ns() // 1000)
        return _last_id


class ChatStore:
    """Thread-safe: one connection, used under a lock (the app calls it from its io thread)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or app_paths().data_dir / "conversations.sqlite3"
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self.problem = ""  # a damaged file recovered, or a folder that cannot be written: for the UI

    @property
    def _con(self) -> sqlite3.Connection:
        """Opened on first use (on the caller's thread: the app's io thread), recovering a damaged file."""
        if self._db is None:
            self._db, self.problem = open_database(self.path, _SCHEMA, SCHEMA_VERSION, ("conversations", "messages"),
                                                   what="conversations", wal=True)  # fmt: skip
        return self._db

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()

    # -- conversations -------------------------------------------------------------------------
    def list(self, search: str = "") -> list[tuple[int, str, float]]:
        """(id, title, updated_at), newest first; ``search`` matches titles and message text."""
        with self._lock:
            if search:
                like = f"%{search}%"
                rows = self._con.execute(
                    "SELECT DISTINCT c.id, c.title, c.updated_at FROM conversations c "
                    "LEFT JOIN messages m ON m.conversation_id = c.id "
                    "WHERE c.title LIKE ? OR m.variants LIKE ? ORDER BY c.updated_at DESC",
                    (like, like),
                ).fetchall()
            else:
                rows = self._con.execute(
                    "SELECT id, title, updated_at FROM conversations ORDER BY updated_at DESC"
                ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def save(self, conv: Conversation) -> int:
        """Insert or update the conversation and all its messages (an upsert on its id).

        A new conversation gets its id here if it has none; the UI assigns one up front
        (:func:`new_conversation_id`) so that every save can run off the GUI thread.
        """
        now = time.time()
        if conv.id is None:
            conv.id = new_conversation_id()
        conv.created_at = conv.created_at or now
        with self._lock, self._con:
            self._con.execute(
                "INSERT INTO conversations (id, title, system_prompt, model_path, model_fingerprint, quant, "
                "llama_cpp_version, settings, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(id) DO UPDATE SET title=excluded.title, system_prompt=excluded.system_prompt, "
                "model_path=excluded.model_path, model_fingerprint=excluded.model_fingerprint, quant=excluded.quant, "
                "llama_cpp_version=excluded.llama_cpp_version, settings=excluded.settings, "
                "updated_at=excluded.updated_at",
                (conv.id, conv.title, conv.system_prompt, conv.model_path, conv.model_fingerprint, conv.quant,
                 conv.llama_cpp_version, json.dumps(conv.settings), conv.created_at, now),
            )  # fmt: skip
            conv.updated_at = now
            self._con.execute("DELETE FROM messages WHERE conversation_id = ?", (conv.id,))
            self._con.executemany(
                "INSERT INTO messages (conversation_id, position, role, variants, chosen, stats, created_at) "
                "VALUES (?,?,?,?,?,?,?)",
                [(conv.id, i, m.role, json.dumps(m.variants), m.chosen, json.dumps(m.stats), now)
                 for i, m in enumerate(conv.messages)],
            )  # fmt: skip
        return conv.id

    def load(self, conv_id: int) -> Conversation | None:
        with self._lock:
            row = self._con.execute(
                "SELECT id, title, system_prompt, model_path, model_fingerprint, quant, llama_cpp_version, "
                "settings, created_at, updated_at FROM conversations WHERE id = ?",
                (conv_id,),
            ).fetchone()
            if row is None:
                return None
            msgs = self._con.execute(
                "SELECT role, variants, chosen, stats FROM messages WHERE conversation_id = ? ORDER BY position",
                (conv_id,),
            ).fetchall()
        return Conversation(
            id=row[0], title=row[1], system_prompt=row[2], model_path=row[3], model_fingerprint=row[4],
            quant=row[5], llama_cpp_version=row[6], settings=json.loads(row[7]), created_at=row[8],
            updated_at=row[9],
            messages=[Message(r[0], json.loads(r[1]), r[2], json.loads(r[3])) for r in msgs],
        )  # fmt: skip

    def rename(self, conv_id: int, title: str) -> None:
        with self._lock, self._con:
            self._con.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conv_id))

    def delete(self, conv_id: int) -> None:
        with self._lock, self._con:
            self._con.execute("DELETE FROM conversations WHERE id = ?", (conv_id,))
