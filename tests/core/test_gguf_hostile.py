"""Malformed and hostile GGUF files: every one ends in a clear message, in bounded time and memory.

The named cases are the damage llama.cpp refuses (or aborts on); the reader must refuse them too,
before a load, with the reason. The mutated corpus (truncations, bit flips, extreme counts) must
never escape as anything but a GGUFError, through the reader, the shape and the predictor.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from desktop_app.core.errors import GGUFError
from desktop_app.core.gguf import read_model_headers
from desktop_app.core.library import LibraryCache, scan_library
from desktop_app.core.memory import Machine, Predictor, RunSettings
from desktop_app.core.memory.shape import model_shape
from desktop_app.core.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gguf_hostile import big_metadata, mutations, named_cases, tiny_llama  # noqa: E402

MACHINE = Machine(ram_available_bytes=16 << 30, ram_total_bytes=24 << 30)


def _check(path: Path) -> str:
    """Read, shape and predict; "ok" or the GGUFError's reason. Anything else fails the test."""
    try:
        shape = model_shape(read_model_headers(path))
        Predictor(shape, MACHINE).predict(RunSettings(n_ctx=min(shape.n_ctx_train, 4096)))
    except GGUFError as exc:
        assert exc.reason and "Traceback" not in exc.reason
        return exc.reason
    return "ok"


@pytest.mark.parametrize("case", named_cases(), ids=lambda c: c.name)
def test_damage_llama_cpp_refuses_is_refused_first_with_the_reason(tmp_path, case):
    path = tmp_path / f"{case.name}.gguf"
    path.write_bytes(case.data)
    result = _check(path)
    if case.name == "valid":
        assert result == "ok"
    else:
        assert result != "ok", f"{case.name} was accepted"
        assert case.words in result


def test_mutated_corpus_gives_only_clear_errors(tmp_path):
    outcomes = {"ok": 0, "refused": 0}
    for name, data in mutations():
        path = tmp_path / "m.gguf"
        path.write_bytes(data)
        try:
            result = _check(path)
        except Exception as exc:  # the failure names the input that caused it
            raise AssertionError(f"{name}: {type(exc).__name__}: {exc}") from exc
        outcomes["ok" if result == "ok" else "refused"] += 1
    assert outcomes["refused"] > 300 and outcomes["ok"] > 0  # the corpus really damages, and not everything


def _scan_in_thread(settings: Settings, cache: LibraryCache | None = None):
    box: dict = {}
    t = threading.Thread(target=lambda: box.update(result=scan_library(settings, cache=cache)), daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "the scan hangs"
    return box["result"]


def test_a_pipe_named_gguf_is_listed_as_a_problem_not_waited_on(tmp_path):
    os.mkfifo(tmp_path / "pipe.gguf")
    (tmp_path / "good.gguf").write_bytes(tiny_llama().to_bytes())
    result = _scan_in_thread(Settings(model_folders=[str(tmp_path)], include_starter=False, include_hf_cache=False))
    by_name = {os.path.basename(e.id): e for e in result.entries}
    assert "not a regular file" in by_name["pipe.gguf"].error
    assert by_name["good.gguf"].error is None
    with pytest.raises(GGUFError, match="not a regular file"):
        read_model_headers(tmp_path / "pipe.gguf")


def test_link_loops_are_reported_not_dropped(tmp_path):
    (tmp_path / "a.gguf").symlink_to(tmp_path / "b.gguf")
    (tmp_path / "b.gguf").symlink_to(tmp_path / "a.gguf")
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "up").symlink_to(tmp_path)
    result = _scan_in_thread(Settings(model_folders=[str(tmp_path)], include_starter=False, include_hf_cache=False))
    text = "\n".join(result.folder_problems)
    assert "a.gguf" in text and "b.gguf" in text and "loop" in text
    assert str(sub / "up") in text


def test_the_library_cache_keeps_only_what_is_shown(tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "huge-metadata.gguf").write_bytes(big_metadata(8_000_000))
    cache = LibraryCache(tmp_path / "cache.json")
    result = _scan_in_thread(Settings(model_folders=[str(folder)], include_starter=False, include_hf_cache=False),
                             cache)  # fmt: skip
    (entry,) = result.entries
    assert entry.error is None
    assert len(entry.info.chat_template) <= 256 * 1024
    assert any("chat template is" in w for w in entry.info.warnings)
    assert (tmp_path / "cache.json").stat().st_size < 1_000_000  # the file holds 16 MB of metadata
    again = LibraryCache.load(tmp_path / "cache.json").last_entries()
    assert again[0].info.name == "huge-metadata"
