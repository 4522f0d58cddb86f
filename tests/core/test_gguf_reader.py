"""The GGUF header reader: real files, generated files, and every kind of damage."""

from __future__ import annotations

import ctypes
import os
import random
import struct

import pytest

from desktop_app.core.errors import (
    CorruptGGUFError,
    GGUFError,
    NotAGGUFError,
    TruncatedGGUFError,
    UnsupportedGGUFError,
)
from desktop_app.core.gguf import GGUFArray, NeedMoreBytes, parse_gguf_header, read_gguf_header
from desktop_app.core.gguf.ggml_types import FILE_TYPES, GGML_TYPES
from desktop_app.core.hardware.llama_build import llama_cpp_lib_dir
from tests.gguf_factory import patch_u64, truncate, write_gguf


def test_reads_the_real_smollm2_header(starter_path):
    h = read_gguf_header(starter_path)
    assert h.version == 3
    assert h.get("general.architecture") == "llama"
    assert h.get("llama.block_count") == 30
    assert h.get("llama.embedding_length") == 576
    assert h.get("llama.attention.head_count") == 9
    assert h.get("llama.attention.head_count_kv") == 3
    assert h.get("llama.context_length") == 8192
    assert h.get("general.file_type") == 3  # MOSTLY_Q4_1
    assert h.get("tokenizer.ggml.tokens") == GGUFArray("string", 49152)
    assert h.get("tokenizer.ggml.merges") == GGUFArray("string", 48900)
    assert h.get("tokenizer.chat_template").startswith("{% for message in messages %}")
    assert len(h.tensors) == 272
    assert h.file_bytes == os.path.getsize(starter_path) == 98_362_432
    # the tensor data ends exactly at the end of the file
    last = max(h.tensors, key=lambda t: t.offset)
    assert h.header_bytes + last.offset + last.n_bytes == h.file_bytes
    emb = next(t for t in h.tensors if t.name == "token_embd.weight")
    assert (emb.shape, emb.type_name, emb.n_bytes) == ((576, 49152), "Q8_0", 576 * 49152 // 32 * 34)


def test_generated_file_round_trips(tmp_path):
    p = write_gguf(tmp_path / "m.gguf", n_layers=3, n_vocab=300, extra_kv={"llama.attention.sliding_window": 128})
    h = read_gguf_header(p)
    assert h.get("llama.block_count") == 3
    assert h.get("llama.attention.sliding_window") == 128
    assert h.value_types["llama.attention.sliding_window"] == "uint32"
    assert h.get("tokenizer.ggml.tokens") == GGUFArray("string", 300)
    assert len(h.tensors) == 1 + 3 * 9 + 2
    assert {t.type_name for t in h.tensors} == {"Q8_0", "F32", "Q4_K", "Q6_K"}


def test_short_arrays_are_kept_and_long_ones_only_counted(tmp_path):
    p = write_gguf(tmp_path / "m.gguf", n_vocab=40, extra_kv={"test.layers": [1, 2, 3]})
    h = read_gguf_header(p)
    assert h.get("test.layers") == [1, 2, 3]
    assert h.get("tokenizer.ggml.tokens")[:2] == ["tok0", "tok1"]
    assert h.get("tokenizer.ggml.token_type") == [1] * 40


def test_partial_buffer_asks_for_more_bytes(tmp_path):
    p = write_gguf(tmp_path / "m.gguf")
    data = p.read_bytes()
    with pytest.raises(NeedMoreBytes) as info:
        parse_gguf_header(data[:100], file_bytes=len(data))
    assert info.value.needed > 100
    header = parse_gguf_header(data[: read_gguf_header(p).header_bytes], file_bytes=len(data))
    assert len(header.tensors) == 1 + 2 * 9 + 2


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty"),
        (b"GG", "only 2 bytes"),
        (b"<!DOCTYPE html><html>Not found</html>", "text file"),
        (b"PK\x03\x04" + b"\0" * 60, "ZIP archive"),
        (b"ggjt" + b"\0" * 60, "old GGML-format"),
        (struct.pack("<Q", 19) + b'{"__metadata__":{}}' + b"\0" * 64, "safetensors"),
        (bytes(range(256)), "does not start with 'GGUF'"),
    ],
)
def test_non_gguf_files_say_what_they_are(tmp_path, content, words):
    p = tmp_path / "x.gguf"
    p.write_bytes(content)
    with pytest.raises(NotAGGUFError) as info:
        read_gguf_header(p)
    assert words in info.value.reason


def test_truncated_in_tensor_data(tmp_path):
    p = write_gguf(tmp_path / "m.gguf")
    size = p.stat().st_size
    truncate(p, size - 1000)
    with pytest.raises(TruncatedGGUFError) as info:
        read_gguf_header(p)
    assert "truncated" in info.value.reason
    assert f"{size:,}" in info.value.reason  # how much the tensors need


def test_truncated_inside_vocabulary(tmp_path):
    p = write_gguf(tmp_path / "m.gguf", n_vocab=5000)
    truncate(p, 20_000)
    with pytest.raises(TruncatedGGUFError, match="truncated"):
        read_gguf_header(p)


def test_every_truncation_point_gives_a_gguf_error(tmp_path):
    p = write_gguf(tmp_path / "m.gguf", n_layers=1, n_vocab=100)
    data = p.read_bytes()
    header_end = read_gguf_header(p).header_bytes
    for cut in range(0, header_end + 64):
        q = tmp_path / "cut.gguf"
        q.write_bytes(data[:cut])
        with pytest.raises(GGUFError):
            read_gguf_header(q)


def test_random_corruption_never_escapes_as_another_exception(tmp_path):
    p = write_gguf(tmp_path / "m.gguf", n_layers=1, n_vocab=64)
    data = bytearray(p.read_bytes())
    header_end = read_gguf_header(p).header_bytes
    rng = random.Random(1234)
    q = tmp_path / "bad.gguf"
    for _ in range(400):
        bad = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            bad[rng.randrange(4, header_end)] = rng.randrange(256)
        q.write_bytes(bad)
        try:
            read_gguf_header(q)
        except GGUFError:
            pass


@pytest.mark.parametrize(
    ("offset", "value", "error", "words"),
    [
        (8, 1 << 60, CorruptGGUFError, "1,152,921,504,606,846,976 tensors"),
        (16, 1 << 60, CorruptGGUFError, "metadata entries"),
        (8, 100_000, TruncatedGGUFError, "100,000 tensors"),
        (24, 1 << 62, CorruptGGUFError, "length of"),  # the first key's length
    ],
)
def test_absurd_counts_and_lengths(tmp_path, offset, value, error, words):
    p = write_gguf(tmp_path / "m.gguf")
    patch_u64(p, offset, value)
    with pytest.raises(error) as info:
        read_gguf_header(p)
    assert words in info.value.reason


def test_absurd_array_count(tmp_path):
    p = write_gguf(tmp_path / "m.gguf", n_vocab=100)
    data = p.read_bytes()
    at = data.index(b"tokenizer.ggml.tokens") + len(b"tokenizer.ggml.tokens") + 4 + 4  # type, item type
    patch_u64(p, at, 1 << 61)
    with pytest.raises(CorruptGGUFError, match="no real model has"):
        read_gguf_header(p)


def test_old_and_foreign_versions(tmp_path):
    p = write_gguf(tmp_path / "m.gguf")
    data = bytearray(p.read_bytes())
    for version, words in ((1, "version 1"), (99, "newer than this app")):
        data[4:8] = struct.pack("<I", version)
        p.write_bytes(data)
        with pytest.raises(UnsupportedGGUFError, match=words):
            read_gguf_header(p)
    data[4:8] = struct.pack(">I", 3)
    p.write_bytes(data)
    with pytest.raises(UnsupportedGGUFError, match="big-endian"):
        read_gguf_header(p)


def test_unknown_tensor_type_and_too_many_dims(tmp_path):
    p = write_gguf(tmp_path / "m.gguf", n_layers=1)
    h = read_gguf_header(p)
    data = bytearray(p.read_bytes())
    # find the last tensor's info: name, n_dims, dims, type, offset
    name = b"output.weight"
    at = data.rindex(name) + len(name)
    n_dims = struct.unpack_from("<I", data, at)[0]
    type_at = at + 4 + 8 * n_dims
    bad = bytearray(data)
    bad[type_at : type_at + 4] = struct.pack("<I", 77)
    p.write_bytes(bad)
    with pytest.raises(UnsupportedGGUFError, match="ggml type 77"):
        read_gguf_header(p)
    bad = bytearray(data)
    bad[at : at + 4] = struct.pack("<I", 9)
    p.write_bytes(bad)
    with pytest.raises(CorruptGGUFError, match="9 dimensions"):
        read_gguf_header(p)
    assert h.tensors[-1].name == "output.weight"


def test_type_table_matches_the_pinned_llama_cpp():
    """Our ggml type sizes must equal those of the llama.cpp that will load the files."""
    lib_dir = llama_cpp_lib_dir()
    assert lib_dir, "llama-cpp-python is a dependency"
    name = next(n for n in os.listdir(lib_dir) if n.startswith(("libggml-base.", "ggml-base.")))
    base = ctypes.CDLL(os.path.join(lib_dir, name))
    base.ggml_type_name.restype = ctypes.c_char_p
    base.ggml_blck_size.restype = ctypes.c_int64
    base.ggml_type_size.restype = ctypes.c_size_t
    for type_id, t in GGML_TYPES.items():
        assert base.ggml_type_name(type_id).decode().upper() == t.name, type_id
        assert (base.ggml_blck_size(type_id), base.ggml_type_size(type_id)) == (t.block_size, t.type_size), t.name


def test_file_type_names_match_gguf_py():
    from gguf.constants import LlamaFileType

    for ft in LlamaFileType:
        if ft.value in FILE_TYPES:
            assert ft.name.removeprefix("MOSTLY_").removeprefix("ALL_") == FILE_TYPES[ft.value]
