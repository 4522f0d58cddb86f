"""Damaged settings and databases, and folders that cannot be written: the app starts, says what
happened, and loses nothing it could keep."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from desktop_app.core.chat.store import ChatStore, Conversation, Message
from desktop_app.core.memory.history import MeasurementStore
from desktop_app.core.paths import app_paths
from desktop_app.core.settings import Settings, SettingsStore

# -- settings.json ------------------------------------------------------------------------------------
NOT_SETTINGS = ["[" * 100_000, "\\ufeff{", '{"model_folders": ["/m"', "\x00\x01binary"]


@pytest.mark.parametrize("text", NOT_SETTINGS)
def test_settings_that_are_not_json_start_with_defaults_and_are_kept(tmp_path, text):
    path = tmp_path / "settings.json"
    path.write_text(text)
    store = SettingsStore(path)
    assert store.load() == Settings()
    [kept] = tmp_path.glob("settings.json.damaged-*")
    assert kept.read_text() == text and "damaged" in store.problem and str(kept) in store.problem


ODD_VALUES = [
    '{"threads": Infinity, "model_folders": ["/m"]}',
    '{"schema_version": 1e400, "model_folders": ["/m"]}',
    '{"model_folders": ["/m"], "theme": NaN}',
    '{"schema_version": "one", "model_folders": ["/m"]}',
]


@pytest.mark.parametrize("text", ODD_VALUES)
def test_values_that_are_not_numbers_are_dropped_and_the_rest_is_kept(tmp_path, text):
    path = tmp_path / "settings.json"
    path.write_text(text)
    store = SettingsStore(path)
    s = store.load()
    assert s.model_folders == ["/m"] and s.threads == 0 and s.theme == "system"
    [backup] = tmp_path.glob("settings.json.not-understood-*")
    assert backup.read_text() == text and "not understood" in store.problem


def test_settings_with_bytes_that_are_not_utf8_keep_them(tmp_path):
    path = tmp_path / "settings.json"
    original = b'{"theme": "dark", "model_folders": ["/models/caf\xe9"]}'
    path.write_bytes(original)
    store = SettingsStore(path)
    s = store.load()
    assert s.theme == "dark" and "not UTF-8" in store.problem
    assert [os.fsencode(f) for f in s.model_folders] == [b"/models/caf\xe9"]  # the folder's real name
    assert next(tmp_path.glob("settings.json.not-understood-*")).read_bytes() == original
    store.save(s)
    assert [os.fsencode(f) for f in SettingsStore(path).load().model_folders] == [b"/models/caf\xe9"]


@pytest.mark.parametrize(
    "folders, kept", [("/models", ["/models"]), ({"a": "/m1", "b": 3, "c": "/m2"}, ["/m1", "/m2"])]
)
def test_a_folder_in_an_odd_shape_is_never_lost(tmp_path, folders, kept):
    path = tmp_path / "settings.json"
    original = json.dumps({"schema_version": 1, "model_folders": folders, "theme": "dark"})
    path.write_text(original)
    store = SettingsStore(path)
    s = store.load()
    assert s.model_folders == kept and s.theme == "dark"
    assert "not understood" in store.problem and "model_folders" in store.problem
    [backup] = tmp_path.glob("settings.json.not-understood-*")
    assert backup.read_text() == original
    s.add_folder(str(tmp_path / "new"))  # the user adds a folder: the old ones stay
    store.save(s)
    assert SettingsStore(path).load().model_folders == [*kept, str(tmp_path / "new")]


def test_an_enormous_settings_file_is_not_read_whole(tmp_path):
    path = tmp_path / "settings.json"
    with open(path, "wb") as f:
        f.write(b'{"x": "' + b"a" * (6 * 1024 * 1024) + b'"}')
    store = SettingsStore(path)
    assert store.load() == Settings() and "over 4 MB" in store.problem


# -- SQLite stores ----------------------------------------------------------------------------------
def _conversations(store: ChatStore, n: int) -> None:
    for i in range(n):
        store.save(Conversation(None, f"chat {i}", messages=[Message("user", [f"question {i}"]),
                                                            Message("assistant", [f"answer {i} " * 200])]))  # fmt: skip


def test_a_truncated_conversation_store_is_recovered_and_kept(tmp_path):
    path = tmp_path / "conversations.sqlite3"
    store = ChatStore(path)
    _conversations(store, 300)
    store._con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])  # the last third lost, as a disk or a copy can do
    again = ChatStore(path)
    rows = again.list()
    assert "damaged" in again.problem and "recovered" in again.problem
    assert 0 < len(rows) <= 300  # what SQLite could still read
    assert again.load(rows[0][0]).messages  # and it is usable
    [moved] = [p for p in tmp_path.glob("conversations.sqlite3.damaged-*") if p.name[-1].isdigit()]
    assert moved.read_bytes() == data[: len(data) * 2 // 3]  # nothing deleted
    _conversations(again, 1)  # new conversations are saved as usual


def test_random_bytes_for_a_store_start_a_new_one(tmp_path):
    path = tmp_path / "conversations.sqlite3"
    path.write_bytes(bytes(range(256)) * 64)
    store = ChatStore(path)
    assert store.list() == [] and "nothing in it could be read" in store.problem
    _conversations(store, 2)
    assert len(ChatStore(path).list()) == 2


def test_a_folder_that_cannot_be_written_keeps_conversations_in_memory(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    store = ChatStore(blocker / "data" / "conversations.sqlite3")
    _conversations(store, 1)
    assert len(store.list()) == 1 and "cannot write its conversations" in store.problem


def test_damaged_measurements_are_recovered_too(tmp_path):
    path = tmp_path / "measurements.sqlite3"
    path.write_bytes(b"SQLite format 3\\0" + b"\\xff" * 5000)
    store = MeasurementStore(path)
    assert store.last_for("abc") is None and "damaged" in store.problem


def test_folders_that_cannot_be_created_are_said_not_raised(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("QUANTDESK_DATA_DIR", str(blocker / "qd"))
    paths = app_paths().ensure()
    assert "cannot create its folders" in paths.problem and str(blocker / "qd") in paths.problem


def test_sqlite_error_types_are_what_we_catch():
    assert issubclass(sqlite3.OperationalError, sqlite3.DatabaseError)


# -- exported reports ---------------------------------------------------------------------------------
def test_a_report_is_replaced_whole_or_kept_when_the_disk_is_full(tmp_path, monkeypatch):
    import errno
    from pathlib import Path

    from desktop_app.core.paths import write_text_atomic

    folder = tmp_path / "reports"
    folder.mkdir()
    report = folder / "report.html"
    write_text_atomic(report, "first")
    write_text_atomic(report, "second")
    assert report.read_text() == "second" and [p.name for p in folder.iterdir()] == ["report.html"]

    real = Path.write_text

    def full_disk(self, data, *a, **k):
        real(self, data[:3], *a, **k)  # part of it reached the disk, then it was full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_text_atomic(report, "third, longer")
    assert report.read_text() == "second" and [p.name for p in folder.iterdir()] == ["report.html"]
