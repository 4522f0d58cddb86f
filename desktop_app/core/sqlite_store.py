"""Open an app database so that a damaged file or an unwritable folder never stops the app.

A truncated or overwritten SQLite file fails at the first statement ("file is not a database",
"database disk image is malformed"). Then the file (with its -wal and -shm) is moved aside, a new
one is created, and every row SQLite can still read from the old one is copied over. Where the
folder cannot be written at all, the database lives in memory for this run. Either way the caller
gets a sentence for the user; nothing already on disk is deleted.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import time
from pathlib import Path

log = logging.getLogger(__name__)


def open_database(path: Path, schema: str, version: int, tables: tuple[str, ...], *, what: str,
                  wal: bool = False) -> tuple[sqlite3.Connection, str]:  # fmt: skip
    """A connection to ``path`` with ``schema`` at ``version``, and what went wrong ("" if nothing).

    ``tables`` are copied, in this order, from a damaged file into the new one. Never raises.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return _open(path, schema, version, wal), ""
    except sqlite3.DatabaseError as exc:
        if isinstance(exc, sqlite3.OperationalError) and "unable to open" in str(exc):
            return _in_memory(schema, version, path, what, exc)
        damage = str(exc)
    except OSError as exc:
        return _in_memory(schema, version, path, what, exc)
    backup = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        for suffix in ("", "-wal", "-shm"):
            src = Path(str(path) + suffix)
            if src.exists():
                os.replace(src, Path(str(backup) + suffix))
        con = _open(path, schema, version, wal)
    except (OSError, sqlite3.Error) as exc:
        return _in_memory(schema, version, path, what, exc)
    saved = _salvage(backup, con, tables)
    problem = (
        f"Your {what} file was damaged ({damage}). It was moved to {backup}; "
        + (f"{saved:,} records were recovered from it into a new one." if saved else "nothing in it could be read, "
           "so QuantDesk started a new one.")
    )  # fmt: skip
    log.warning(problem)
    return con, problem


def _open(path: Path, schema: str, version: int, wal: bool) -> sqlite3.Connection:
    con = sqlite3.connect(path, check_same_thread=False, timeout=10)
    try:
        if wal:
            con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA foreign_keys=ON")
        if con.execute("PRAGMA user_version").fetchone()[0] < version:
            con.executescript(schema)
            con.execute(f"PRAGMA user_version = {int(version)}")
            con.commit()
        ok = con.execute("PRAGMA quick_check(1)").fetchone()
        if not ok or ok[0] != "ok":
            raise sqlite3.DatabaseError(f"quick_check: {ok[0] if ok else 'no answer'}")
    except BaseException:
        con.close()
        raise
    return con


def _in_memory(schema: str, version: int, path: Path, what: str, exc: Exception) -> tuple[sqlite3.Connection, str]:
    con = sqlite3.connect(":memory:", check_same_thread=False)
    con.execute("PRAGMA foreign_keys=ON")
    con.executescript(schema)
    con.execute(f"PRAGMA user_version = {int(version)}")
    problem = (
        f"QuantDesk cannot write its {what} to {path.parent} ({getattr(exc, 'strerror', None) or exc}). They are kept "
        "only until QuantDesk closes. Make the folder writable, or set QUANTDESK_DATA_DIR to one that is."
    )
    log.warning(problem)
    return con, problem


MAX_SALVAGE_QUERIES = 50_000


class _Pages:
    """Read-only access to the pages of a damaged database file (for its b-tree's shape only)."""

    def __init__(self, path: Path) -> None:
        self.data = path.read_bytes()
        size = struct.unpack(">H", self.data[16:18])[0] if len(self.data) >= 100 else 4096
        self.size = 65536 if size == 1 else size if size >= 512 and size & (size - 1) == 0 else 4096

    def interior(self, pno: int) -> list[tuple[int, int | None]] | None:
        """An interior table page's (child, largest key under it) pairs, the right child last with
        key None; None if the page is missing or not such a page."""
        off = (pno - 1) * self.size
        hdr = off + (100 if pno == 1 else 0)
        if pno < 1 or hdr + 12 > len(self.data) or self.data[hdr] != 5:
            return None
        n = struct.unpack(">H", self.data[hdr + 3 : hdr + 5])[0]
        out: list[tuple[int, int | None]] = []
        for i in range(min(n, self.size // 2)):
            ptr = struct.unpack(">H", self.data[hdr + 12 + 2 * i : hdr + 14 + 2 * i])[0]
            cell = off + ptr
            if cell + 5 > len(self.data):
                return None
            child = struct.unpack(">I", self.data[cell : cell + 4])[0]
            out.append((child, _varint(self.data, cell + 4)))
        out.append((struct.unpack(">I", self.data[hdr + 8 : hdr + 12])[0], None))
        return out


def _varint(data: bytes, pos: int) -> int:
    value = 0
    for i in range(9):
        if pos + i >= len(data):
            break
        byte = data[pos + i]
        if i == 8:
            value = (value << 8) | byte
            break
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            break
    return value - (1 << 64) if value >= 1 << 63 else value


def _readable_rows(old: sqlite3.Connection, pages: _Pages | None, table: str, names: str):
    """The rows SQLite can still reach. A scan stops at the first missing page; here the table's
    b-tree guides the way: each child's key range is asked for on its own, and a range that fails is
    split along its page's children, so every intact part of the tree is read (SQLite decodes the
    records), and only what is really lost stays lost."""
    try:
        yield old.execute(f"SELECT {names} FROM {table}").fetchall()
        return
    except sqlite3.Error:
        pass
    if pages is None:
        return
    try:
        root = old.execute("SELECT rootpage FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
    except sqlite3.Error:
        return
    budget = [MAX_SALVAGE_QUERIES]
    query = f"SELECT {names} FROM {table} WHERE rowid BETWEEN ? AND ?"

    def walk(pno: int, lo: int, hi: int, depth: int):
        if budget[0] <= 0 or depth > 24 or lo > hi:
            return
        budget[0] -= 1
        try:
            yield old.execute(query, (lo, hi)).fetchall()
            return
        except sqlite3.Error:
            pass
        children = pages.interior(pno)
        if children is None:  # a lost or broken page: its rows are gone
            return
        start = lo
        for child, key in children:
            end = hi if key is None else min(key, hi)
            yield from walk(child, start, end, depth + 1)
            if key is not None:
                start = max(start, key + 1)

    if root and isinstance(root[0], int):
        yield from walk(root[0], -(1 << 63), (1 << 63) - 1, 0)


def _readable_copy(damaged: Path) -> tuple[Path | None, _Pages | None]:
    """A copy SQLite will open: cut to whole pages, with the header's page count made to match
    (SQLite refuses a file shorter than its header says, even the pages that are there)."""
    try:
        pages = _Pages(damaged)
        data = bytearray(pages.data[: len(pages.data) // pages.size * pages.size])
        if len(data) >= 100 and data[:16] == b"SQLite format 3\0":
            data[28:32] = struct.pack(">I", len(data) // pages.size)
        copy = damaged.with_name(damaged.name + ".reading")
        copy.write_bytes(bytes(data))
        pages.data = bytes(data)
        return copy, pages
    except OSError:
        return None, None


def _salvage(damaged: Path, con: sqlite3.Connection, tables: tuple[str, ...]) -> int:
    """Copy what SQLite can still read from ``damaged``, table by table, row batch by row batch."""
    copy, pages = _readable_copy(damaged)
    try:
        old = sqlite3.connect(f"file:{copy or damaged}?mode=ro", uri=True)
    except sqlite3.Error:
        return 0
    saved = 0
    con.execute("PRAGMA foreign_keys=OFF")  # rows whose parent was lost are dropped below instead
    try:
        for table in tables:
            try:
                have = [r[1] for r in old.execute(f"PRAGMA table_info({table})")]
                want = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
            except sqlite3.Error:
                continue
            cols = [c for c in have if c in want]
            if not cols:
                continue
            names = ", ".join(cols)
            insert = f"INSERT OR IGNORE INTO {table} ({names}) VALUES ({', '.join('?' * len(cols))})"
            for rows in _readable_rows(old, pages, table, names):
                try:
                    con.executemany(insert, rows)
                    saved += len(rows)
                except sqlite3.Error:
                    continue
        for table, rowid, _parent, _fk in con.execute("PRAGMA foreign_key_check").fetchall():
            con.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))
            saved -= 1
        con.commit()
    finally:
        con.execute("PRAGMA foreign_keys=ON")
        old.close()
        if copy is not None:
            copy.unlink(missing_ok=True)
    return max(saved, 0)
