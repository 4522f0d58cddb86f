"""What llama.cpp really allocated, kept beside what we predicted ("measured last time").

Every real load (a measurement from the fit panel now, every chat load once the engine lands)
records llama.cpp's buffer sizes with the prediction made for the same settings. The pairs feed
the accuracy benchmark and tell the user how far to trust the prediction for this file.
SQLite in the data folder, schema versioned with ``PRAGMA user_version``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from desktop_app.core.paths import app_paths
from desktop_app.core.runtime.backends import llama_cpp_version
from desktop_app.core.sqlite_store import open_database

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    model_path TEXT NOT NULL,
    settings TEXT NOT NULL,
    predicted TEXT NOT NULL,
    measured TEXT NOT NULL,
    llama_cpp_version TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS measurements_by_model ON measurements (fingerprint, created_at);
"""


def model_fingerprint(path: str) -> str:
    """Stable across moves and renames: the size and the first 64 KiB (the header's start)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(65536)
    return hashlib.sha256(size.to_bytes(8, "little") + head).hexdigest()[:32]


@dataclass
class MeasurementRecord:
    fingerprint: str
    model_path: str
    settings: dict
    predicted: dict  # bytes per term (weights, kv_cache, compute, output)
    measured: dict
    llama_cpp_version: str
    created_at: float


class MeasurementStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or app_paths().data_dir / "measurements.sqlite3"
        self.problem = ""

    def _connect(self) -> sqlite3.Connection:
        con, self.problem = open_database(self.path, _SCHEMA, SCHEMA_VERSION, ("measurements",), what="measurements")
        return con

    def record(self, rec: MeasurementRecord) -> None:
        with self._connect() as con:
            con.execute(
                "INSERT INTO measurements (fingerprint, model_path, settings, predicted, measured, "
                "llama_cpp_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    rec.fingerprint,
                    rec.model_path,
                    json.dumps(rec.settings),
                    json.dumps(rec.predicted),
                    json.dumps(rec.measured),
                    rec.llama_cpp_version,
                    rec.created_at or time.time(),
                ),
            )
        con.close()

    def last_for(self, fingerprint: str) -> MeasurementRecord | None:
        if not self.path.exists():
            return None
        con = self._connect()
        try:
            row = con.execute(
                "SELECT fingerprint, model_path, settings, predicted, measured, llama_cpp_version, created_at "
                "FROM measurements WHERE fingerprint = ? ORDER BY created_at DESC, id DESC LIMIT 1",
                (fingerprint,),
            ).fetchone()
        finally:
            con.close()
        if row is None:
            return None
        return MeasurementRecord(row[0], row[1], json.loads(row[2]), json.loads(row[3]), json.loads(row[4]),
                                 row[5], row[6])  # fmt: skip

    def all(self) -> list[MeasurementRecord]:
        if not self.path.exists():
            return []
        con = self._connect()
        try:
            rows = con.execute(
                "SELECT fingerprint, model_path, settings, predicted, measured, llama_cpp_version, created_at "
                "FROM measurements ORDER BY id"
            ).fetchall()
        finally:
            con.close()
        return [MeasurementRecord(r[0], r[1], json.loads(r[2]), json.loads(r[3]), json.loads(r[4]), r[5], r[6])
                for r in rows]  # fmt: skip


def _pair(path: str, settings: dict, predicted, buffers) -> MeasurementRecord:
    """What was predicted (a Prediction) beside what llama.cpp allocated (a LlamaBuffers)."""
    return MeasurementRecord(
        fingerprint=model_fingerprint(path),
        model_path=os.path.abspath(path),
        settings=settings,
        predicted={
            "weights_bytes": predicted.ram.weights_bytes + predicted.vram.weights_bytes,
            "kv_cache_bytes": predicted.ram.kv_cache_bytes + predicted.vram.kv_cache_bytes,
            "compute_bytes": predicted.ram.compute_bytes + predicted.vram.compute_bytes,
            "output_bytes": predicted.ram.output_bytes,
        },
        measured={
            "weights_bytes": buffers.weights_bytes,
            "kv_cache_bytes": buffers.kv_cache_bytes,
            "compute_bytes": buffers.compute_bytes,
            "output_bytes": buffers.output_bytes,
            "buffers": buffers.to_dict(),
        },
        llama_cpp_version=llama_cpp_version() or "",
        created_at=time.time(),
    )


def measure_and_record(path: str, settings, predicted, *, store: MeasurementStore | None = None) -> MeasurementRecord:
    """Load ``path`` in llama.cpp with ``settings`` (a RunSettings, CPU), record and return the pair.

    Raises:
        MeasureError: llama.cpp could not load it.
    """
    from desktop_app.core.memory.measure import measure_allocations

    buffers = measure_allocations(
        path,
        n_ctx=settings.n_ctx,
        n_ubatch=settings.n_ubatch,
        n_batch=settings.n_batch,
        kv_type=settings.kv_type,
        flash_attn=settings.flash_attn,
        n_gpu_layers=0 if settings.n_gpu_layers == "auto" else int(settings.n_gpu_layers),
        swa_full=settings.swa_full,
    ).buffers
    used = {"n_ctx": settings.n_ctx, "kv_type": settings.kv_type, "flash_attn": settings.flash_attn,
            "n_ubatch": settings.n_ubatch, "n_gpu_layers": settings.n_gpu_layers}  # fmt: skip
    rec = _pair(path, used, predicted, buffers)
    (store or MeasurementStore()).record(rec)
    return rec


def record_load(path: str, load_log: str, predicted, *, store: MeasurementStore | None = None) -> MeasurementRecord:
    """A chat load is a measurement too: llama.cpp's buffers, read from its load log, beside the
    prediction the load was checked with (run it off the GUI thread: the log is thousands of lines)."""
    from desktop_app.core.memory.llama_log import parse_llama_log

    used = {"n_ctx": predicted.n_ctx, "kv_type": predicted.kv_type, "n_gpu_layers": predicted.n_gpu_layers}
    rec = _pair(path, used, predicted, parse_llama_log(load_log))
    (store or MeasurementStore()).record(rec)
    return rec
