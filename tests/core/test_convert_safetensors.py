"""Reading Hugging Face safetensors checkpoints: values round-trip, order holds, and every hostile
file (truncated, lying offsets, escaping index, ...) is refused with a message that says what is wrong."""

from __future__ import annotations

import json
import os
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from desktop_app.core.convert import safetensors_io
from desktop_app.core.convert.safetensors_io import (
    INDEX_NAME,
    TensorEntry,
    list_tensors,
    load_rows,
    load_tensor,
    tensor_bytes_total,
)
from desktop_app.core.errors import CheckpointError, QuantDeskError

F32_BLOCK = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


def write_raw(path: Path, header: dict | bytes, data: bytes = b"", length: int | None = None) -> Path:
    """A safetensors file built byte by byte, so it can lie in every way a real one cannot."""
    blob = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob) if length is None else length) + blob + data)
    return path


def bf16_values(n: int) -> np.ndarray:
    """float32 values bfloat16 holds exactly (the low 16 bits are zero), specials included."""
    rng = np.random.default_rng(7)
    bits = rng.standard_normal(n).astype(np.float32).view(np.uint32) & np.uint32(0xFFFF0000)
    specials = np.array([0.0, -0.0, 1.0, -2.5, np.inf, -np.inf], dtype=np.float32).view(np.uint32)
    largest = np.array([0x7F7F0000, 0x00010000], dtype=np.uint32)  # the largest finite, a tiny normal
    return np.concatenate([bits, specials, largest]).view(np.float32)


def write_bf16(path: Path, name: str, values: np.ndarray, shape: tuple[int, ...]) -> Path:
    bits = values.astype("<f4").view("<u4")
    assert not (bits & 0xFFFF).any()
    data = (bits >> 16).astype("<u2").tobytes()
    return write_raw(path, {name: {"dtype": "BF16", "shape": list(shape), "data_offsets": [0, len(data)]}}, data)


def refused(folder: Path, phrase: str) -> str:
    with pytest.raises(CheckpointError) as info:
        list_tensors(folder)
    message = str(info.value)
    assert phrase.lower() in message.lower(), message
    assert "Traceback" not in message and len(message) < 400
    return message


def two_shards(folder: Path) -> dict[str, np.ndarray]:
    arrays = {
        "model.embed.weight": np.arange(12, dtype=np.float32).reshape(3, 4),
        "model.layers.0.w": np.linspace(-1, 1, 6, dtype=np.float16).reshape(2, 3),
        "model.layers.1.w": np.full((5,), 0.25, dtype=np.float32),
    }
    save_file({"model.embed.weight": arrays["model.embed.weight"]}, folder / "model-00001-of-00002.safetensors")
    second = {k: arrays[k] for k in ("model.layers.0.w", "model.layers.1.w")}
    save_file(second, folder / "model-00002-of-00002.safetensors")
    return arrays


def write_index(folder: Path, weight_map: object) -> None:
    (folder / INDEX_NAME).write_text(json.dumps({"metadata": {"total_size": 1}, "weight_map": weight_map}))


# -- good checkpoints


def test_errors_are_quantdesk_errors() -> None:
    assert issubclass(CheckpointError, QuantDeskError)


def test_single_file_round_trips_f32_and_f16(tmp_path: Path) -> None:
    arrays = {
        "a.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7,
        "b.weight": np.array([[0.5, -1.25], [65504.0, -0.0]], dtype=np.float16),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    save_file(arrays, tmp_path / "model.safetensors", metadata={"format": "pt"})
    entries = list_tensors(tmp_path)
    assert set(entries) == set(arrays)
    for name, array in arrays.items():
        entry = entries[name]
        assert entry.file == tmp_path / "model.safetensors"
        assert entry.shape == array.shape and entry.nbytes == array.nbytes
        loaded = load_tensor(entry)
        assert loaded.dtype == array.dtype and loaded.shape == array.shape
        np.testing.assert_array_equal(loaded, array)
    assert entries["a.weight"].dtype == "F32" and entries["b.weight"].dtype == "F16"
    assert tensor_bytes_total(entries) == sum(a.nbytes for a in arrays.values())


def test_bf16_widens_exactly_to_float32(tmp_path: Path) -> None:
    values = bf16_values(56)  # + 8 specials: 64
    write_bf16(tmp_path / "model.safetensors", "w", values, (8, 8))
    entry = list_tensors(tmp_path)["w"]
    assert (entry.dtype, entry.shape, entry.nbytes) == ("BF16", (8, 8), 128)
    loaded = load_tensor(entry)
    assert loaded.dtype == np.float32 and loaded.shape == (8, 8)
    assert loaded.reshape(-1).view(np.uint32).tolist() == values.view(np.uint32).tolist()  # bit for bit, -0.0 too
    np.testing.assert_array_equal(load_rows(entry, 3, 5), loaded[3:5])


def test_tensors_come_in_data_offset_order_not_name_or_header_order(tmp_path: Path) -> None:
    header = {
        "alpha": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]},
        "mid": {"dtype": "F16", "shape": [2], "data_offsets": [4, 8]},
        "zeta": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
    }
    data = struct.pack("<f", 1.0) + np.array([2, 3], dtype="<f2").tobytes() + struct.pack("<f", 4.0)
    write_raw(tmp_path / "model.safetensors", header, data)
    entries = list_tensors(tmp_path)
    assert list(entries) == ["zeta", "mid", "alpha"]
    assert [load_tensor(e).tolist() for e in entries.values()] == [[1.0], [2.0, 3.0], [4.0]]


def test_sharded_checkpoint_with_index_in_shard_order(tmp_path: Path) -> None:
    arrays = two_shards(tmp_path)
    write_index(
        tmp_path,  # the index's own order does not matter: shards are walked by name
        {
            "model.layers.1.w": "model-00002-of-00002.safetensors",
            "model.layers.0.w": "model-00002-of-00002.safetensors",
            "model.embed.weight": "model-00001-of-00002.safetensors",
        },
    )
    entries = list_tensors(tmp_path)
    assert list(entries)[0] == "model.embed.weight"
    assert entries["model.embed.weight"].file.name == "model-00001-of-00002.safetensors"
    assert {entries[k].file.name for k in ("model.layers.0.w", "model.layers.1.w")} == {
        "model-00002-of-00002.safetensors"
    }
    for name, array in arrays.items():
        np.testing.assert_array_equal(load_tensor(entries[name]), array)


def test_without_index_every_safetensors_file_is_read_in_name_order(tmp_path: Path) -> None:
    two_shards(tmp_path)
    (tmp_path / "._model-00001-of-00002.safetensors").write_bytes(b"\0\5\26\7 macOS sidecar")
    (tmp_path / "config.json").write_text("{}")
    entries = list_tensors(tmp_path)
    assert [e.file.name for e in entries.values()] == ["model-00001-of-00002.safetensors"] + [
        "model-00002-of-00002.safetensors"
    ] * 2


def test_integer_buffers_are_listed_but_not_loaded(tmp_path: Path) -> None:
    save_file(
        {"position_ids": np.arange(8, dtype=np.int64).reshape(1, 8), "w": np.ones(2, np.float32)},
        tmp_path / "model.safetensors",
    )
    entries = list_tensors(tmp_path)
    assert entries["position_ids"].dtype == "I64" and entries["position_ids"].nbytes == 64
    with pytest.raises(CheckpointError, match="position_ids .* is stored as I64.*cannot convert"):
        load_tensor(entries["position_ids"])


def test_load_rows_reads_a_slice_of_the_first_dimension(tmp_path: Path) -> None:
    array = np.arange(60, dtype=np.float16).reshape(10, 3, 2)
    save_file({"w": array}, tmp_path / "model.safetensors")
    entry = list_tensors(tmp_path)["w"]
    np.testing.assert_array_equal(load_rows(entry, 2, 7), array[2:7])
    assert load_rows(entry, 4, 4).shape == (0, 3, 2)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_rows(entry, 8, 11)


def test_an_entry_without_an_offset_finds_it_again(tmp_path: Path) -> None:
    save_file({"a": np.zeros(3, np.float32), "b": np.arange(4, dtype=np.float32)}, tmp_path / "model.safetensors")
    listed = list_tensors(tmp_path)["b"]
    bare = TensorEntry(listed.name, listed.dtype, listed.shape, listed.file, listed.nbytes)
    np.testing.assert_array_equal(load_tensor(bare), np.arange(4, dtype=np.float32))


def test_the_hugging_face_cache_layout_links_are_followed(tmp_path: Path) -> None:
    blobs, snapshot = tmp_path / "blobs", tmp_path / "snapshots" / ("c" * 40)
    blobs.mkdir()
    snapshot.mkdir(parents=True)
    save_file({"w": np.ones(3, np.float32)}, blobs / "e3b0c44298fc")
    try:
        (snapshot / "model.safetensors").symlink_to(os.path.join("..", "..", "blobs", "e3b0c44298fc"))
    except OSError:
        pytest.skip("no symlinks here")
    entry = list_tensors(snapshot)["w"]
    assert entry.file.name == "model.safetensors"
    np.testing.assert_array_equal(load_tensor(entry), np.ones(3, np.float32))


def test_loading_one_tensor_does_not_read_the_whole_file(tmp_path: Path) -> None:
    n = 4 * 1024 * 1024  # four 16 MB tensors: a 64 MB file
    save_file({f"t{i}": np.full(n, i, dtype=np.float32) for i in range(4)}, tmp_path / "model.safetensors")
    entries = list_tensors(tmp_path)
    tracemalloc.start()
    try:
        array = load_tensor(entries["t2"])
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        rows = load_rows(entries["t3"], 0, n // 16)
        _, rows_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert array.shape == (n,) and array[0] == 2 and array[-1] == 2
    assert peak < 2 * entries["t2"].nbytes, peak
    assert rows.shape == (n // 16,) and (rows == 3).all()
    assert rows_peak - array.nbytes < 2 * rows.nbytes, rows_peak


# -- hostile single files


HOSTILE = {
    "header not JSON": (b"{not json", b"", None, "not valid JSON"),
    "header not UTF-8": (b'{"\xff\xfe": 1}', b"", None, "not valid JSON"),
    "header a list": (b"[1, 2]", b"", None, "not a table of tensors"),
    "header names a tensor twice": (
        b'{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, '
        b'"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}',
        b"\0" * 8,
        None,
        "'a' twice",
    ),
    "header longer than the file": (b"{}", b"", 1000, "header claims 1000 bytes"),
    "header absurdly long": (b"{}", b"", 1 << 40, "more than safetensors allows"),
    "metadata not texts": ({"__metadata__": {"format": 1}, "a": F32_BLOCK}, b"\0" * 8, None, "__metadata__"),
    "entry not a table": ({"a": 5}, b"", None, "not a tensor description"),
    "unknown dtype": ({"a": {**F32_BLOCK, "dtype": "Q9"}}, b"\0" * 8, None, "unknown data type 'Q9'"),
    "dtype not text": ({"a": {**F32_BLOCK, "dtype": ["F32"]}}, b"\0" * 8, None, "unknown data type"),
    "fp8 weights": ({"a.weight": {**F32_BLOCK, "dtype": "F8_E4M3"}}, b"\0" * 8, None, "a.weight in model"),
    "negative shape": ({"a": {**F32_BLOCK, "shape": [-2]}}, b"\0" * 8, None, "impossible shape [-2]"),
    "huge shape": ({"a": {**F32_BLOCK, "shape": [1 << 62]}}, b"\0" * 8, None, "impossible shape"),
    "nine dimensions": ({"a": {**F32_BLOCK, "shape": [1] * 9}}, b"\0" * 8, None, "impossible shape"),
    "true as a dimension": ({"a": {**F32_BLOCK, "shape": [True, 2]}}, b"\0" * 8, None, "impossible shape"),
    "float dimension": ({"a": {**F32_BLOCK, "shape": [2.0]}}, b"\0" * 8, None, "impossible shape"),
    "shape is not a list": ({"a": {**F32_BLOCK, "shape": "2"}}, b"\0" * 8, None, "impossible shape"),
    "offsets reversed": ({"a": {**F32_BLOCK, "data_offsets": [8, 0]}}, b"\0" * 8, None, "impossible data offsets"),
    "offsets negative": ({"a": {**F32_BLOCK, "data_offsets": [-8, 0]}}, b"\0" * 8, None, "impossible data offsets"),
    "three offsets": ({"a": {**F32_BLOCK, "data_offsets": [0, 4, 8]}}, b"\0" * 8, None, "impossible data offsets"),
    "offsets missing": ({"a": {"dtype": "F32", "shape": [2]}}, b"\0" * 8, None, "impossible data offsets"),
    "size does not match the shape": (
        {"a": {**F32_BLOCK, "data_offsets": [0, 4]}},
        b"\0" * 4,
        None,
        "spans 4 bytes, which does not match its shape [2] of F32",
    ),
    "huge shape the offsets do not cover": (
        {"a": {**F32_BLOCK, "shape": [1 << 40, 1 << 8]}},
        b"\0" * 8,
        None,
        "does not match its shape",
    ),
    "end beyond the data": (
        {"a": F32_BLOCK, "b": {**F32_BLOCK, "shape": [1 << 30], "data_offsets": [8, 8 + (4 << 30)]}},
        b"\0" * 16,
        None,
        "truncated",
    ),
    "overlapping tensors": (
        {"a": F32_BLOCK, "b": {**F32_BLOCK, "data_offsets": [4, 12]}},
        b"\0" * 12,
        None,
        "the data of b overlaps",
    ),
    "gap between tensors": (
        {"a": {**F32_BLOCK, "shape": [1], "data_offsets": [0, 4]}, "b": {**F32_BLOCK, "data_offsets": [8, 16]}},
        b"\0" * 16,
        None,
        "gap of 4 bytes before the data of b",
    ),
    "bytes after the last tensor": ({"a": F32_BLOCK}, b"\0" * 12, None, "4 bytes after its last tensor"),
    "name with a newline": ({"a\nb": F32_BLOCK}, b"\0" * 8, None, "tensor named 'a\\nb'"),
    "empty name": ({"": F32_BLOCK}, b"\0" * 8, None, "tensor named ''"),
    "name too long": ({"x" * 600: F32_BLOCK}, b"\0" * 8, None, "which no real model has"),
    "no tensors": ({"__metadata__": {"format": "pt"}}, b"", None, "hold no tensors"),
}


@pytest.mark.parametrize("header, data, length, phrase", list(HOSTILE.values()), ids=list(HOSTILE))
def test_hostile_file_is_refused_with_a_reason(
    tmp_path: Path, header: dict | bytes, data: bytes, length: int | None, phrase: str
) -> None:
    write_raw(tmp_path / "model.safetensors", header, data, length)
    message = refused(tmp_path, phrase)
    if phrase != "hold no tensors":
        assert "model.safetensors" in message


def test_unsupported_dtype_names_the_tensor_and_type(tmp_path: Path) -> None:
    write_raw(tmp_path / "model.safetensors", {"a.weight": {**F32_BLOCK, "dtype": "F8_E4M3"}}, b"\0" * 8)
    refused(tmp_path, "a.weight in model.safetensors is stored as F8_E4M3, which QuantDesk cannot convert")


def test_file_shorter_than_eight_bytes(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"\x10\0\0")
    refused(tmp_path, "too short")


def test_truncated_download(tmp_path: Path) -> None:
    save_file({"a": np.ones(100, np.float32), "b": np.ones(100, np.float32)}, tmp_path / "model.safetensors")
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    message = refused(tmp_path, "model.safetensors is truncated")
    assert "100 bytes too early" in message and "Download it again" in message


def test_file_cut_short_after_it_was_listed(tmp_path: Path) -> None:
    save_file({"a": np.ones(100, np.float32), "b": np.ones(100, np.float32)}, tmp_path / "model.safetensors")
    entries = list_tensors(tmp_path)
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="ends before the data of b"):
        load_tensor(entries["b"])


def test_what_safetensors_itself_refuses_becomes_a_checkpoint_error(tmp_path: Path, monkeypatch) -> None:
    save_file({"a": np.ones(2, np.float32)}, tmp_path / "model.safetensors")

    def failing_open(*args: object, **kwargs: object) -> None:
        raise RuntimeError("Error while deserializing header: invalid\nsecond line")

    monkeypatch.setattr(safetensors_io, "safe_open", failing_open)
    message = refused(tmp_path, "model.safetensors is damaged: safetensors cannot read it")
    assert "deserializing header: invalid" in message and "second line" not in message


# -- hostile folders and indexes


def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "pytorch_model.bin").write_bytes(b"\0" * 16)
    refused(tmp_path, f"No .safetensors weights in {tmp_path}")


def test_not_a_folder(tmp_path: Path) -> None:
    refused(tmp_path / "nowhere", "is not a folder")


@pytest.mark.parametrize(
    "shard",
    ["../x.safetensors", "/etc/passwd", "sub/x.safetensors", "a\\b.safetensors", "..", "C:x.safetensors", "a\0b", ""],
)
def test_index_naming_a_path_outside_the_folder(tmp_path: Path, shard: str) -> None:
    (tmp_path.parent / "x.safetensors").write_bytes(b"")
    save_file({"a": np.ones(2, np.float32)}, tmp_path / "model.safetensors")
    write_index(tmp_path, {"a": shard})
    refused(tmp_path, "not a plain file name in the model folder")


def test_index_naming_a_link_out_of_the_folder(tmp_path: Path) -> None:
    outside, folder = tmp_path / "outside", tmp_path / "model"
    outside.mkdir()
    folder.mkdir()
    save_file({"a": np.ones(2, np.float32)}, outside / "secret.safetensors")
    try:
        (folder / "model.safetensors").symlink_to(outside / "secret.safetensors")
    except OSError:
        pytest.skip("no symlinks here")
    write_index(folder, {"a": "model.safetensors"})
    refused(folder, "outside the model folder")
    (folder / INDEX_NAME).unlink()
    refused(folder, "outside the model folder")


def test_index_naming_a_missing_shard(tmp_path: Path) -> None:
    save_file({"a": np.ones(2, np.float32)}, tmp_path / "model-00001-of-00002.safetensors")
    write_index(tmp_path, {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"})
    message = refused(tmp_path, "the checkpoint is incomplete: model-00002-of-00002.safetensors is missing")
    assert "Download" in message


def test_shards_without_index_missing_one(tmp_path: Path) -> None:
    save_file({"a": np.ones(2, np.float32)}, tmp_path / "model-00001-of-00003.safetensors")
    save_file({"c": np.ones(2, np.float32)}, tmp_path / "model-00003-of-00003.safetensors")
    refused(tmp_path, "incomplete: model-00002-of-00003.safetensors is missing")


def test_index_tensor_not_in_the_shard_header(tmp_path: Path) -> None:
    two_shards(tmp_path)
    write_index(
        tmp_path,
        {
            "model.embed.weight": "model-00001-of-00002.safetensors",
            "model.layers.0.w": "model-00002-of-00002.safetensors",
            "model.layers.1.w": "model-00002-of-00002.safetensors",
            "lm_head.weight": "model-00002-of-00002.safetensors",
        },
    )
    refused(tmp_path, "incomplete: model-00002-of-00002.safetensors does not hold lm_head.weight")


def test_index_placing_a_tensor_in_the_wrong_shard(tmp_path: Path) -> None:
    two_shards(tmp_path)
    write_index(
        tmp_path,
        {
            "model.embed.weight": "model-00002-of-00002.safetensors",
            "model.layers.0.w": "model-00001-of-00002.safetensors",
        },
    )
    refused(tmp_path, "model-00002-of-00002.safetensors does not hold model.embed.weight")


@pytest.mark.parametrize(
    "text, phrase",
    [
        ("{not json", "model.safetensors.index.json is damaged: it is not valid JSON"),
        ("[]", "no weight_map"),
        ('{"weight_map": {}}', "no weight_map"),
        ('{"weight_map": ["model.safetensors"]}', "no weight_map"),
        ('{"weight_map": {"a": 7}}', "the file named for a is not a file name"),
        ('{"weight_map": {"a\\u0007": "model.safetensors"}}', "tensor named"),
    ],
)
def test_damaged_index(tmp_path: Path, text: str, phrase: str) -> None:
    save_file({"a": np.ones(2, np.float32)}, tmp_path / "model.safetensors")
    (tmp_path / INDEX_NAME).write_text(text)
    refused(tmp_path, phrase)


def test_duplicate_names_across_shards(tmp_path: Path) -> None:
    save_file({"a": np.ones(2, np.float32)}, tmp_path / "model-00001-of-00002.safetensors")
    save_file({"a": np.zeros(2, np.float32)}, tmp_path / "model-00002-of-00002.safetensors")
    refused(tmp_path, "the tensor a is in both model-00001-of-00002.safetensors and model-00002-of-00002.safetensors")
    write_index(tmp_path, {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"})
    refused(tmp_path, "is in both")


def test_a_shard_that_is_a_folder(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").mkdir()
    refused(tmp_path, "model.safetensors is not a regular file")
