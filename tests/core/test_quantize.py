"""The quantizer job (progress, cancel, disk space, errors) and importance matrices (read, compute, use)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
import threading
from pathlib import Path

import numpy as np
import psutil
import pytest

from desktop_app.core import quantize as quantize_module
from desktop_app.core.errors import ImatrixCancelled, ImatrixError, QuantizeCancelled, QuantizeError
from desktop_app.core.gguf import read_gguf_header
from desktop_app.core.imatrix import compute_imatrix, load_imatrix, read_imatrix, write_imatrix_gguf
from desktop_app.core.quantize import HEADER_SLACK, QuantizeProgress, TensorLog, predicted_bytes, quantize
from desktop_app.resources import resource_path

TEXT = resource_path("compare/fidelity-text.txt").read_text("utf-8")


def _children(marker: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(marker in part for part in p.info["cmdline"] or []):
                found.append(p)
    return found


def _matmul_weights(path: str) -> dict[str, int]:
    """The weights llama-imatrix collects: 2D ``blk.*`` matrices, with their row length."""
    return {
        t.name: t.shape[0] for t in read_gguf_header(path).tensors if t.name.startswith("blk.") and len(t.shape) == 2
    }


def _files(folder) -> list[str]:
    """The files in ``folder`` (the test setup keeps the app's own folder in tmp_path)."""
    return sorted(p.name for p in Path(folder).iterdir() if p.is_file())


# -- quantizing


def test_progress_counts_every_tensor_in_order(starter_path, tmp_path):
    dst = tmp_path / "out.gguf"
    seen: list[QuantizeProgress] = []
    quantize(starter_path, str(dst), "Q4_K_S", progress=seen.append)
    names = [t.name for t in read_gguf_header(starter_path).tensors]
    assert [p.done for p in seen] == list(range(1, len(names) + 1))
    assert {p.total for p in seen} == {len(names)}
    assert sorted(p.tensor for p in seen) == sorted(names)
    assert _files(tmp_path) == ["out.gguf"]
    size = dst.stat().st_size
    assert size <= predicted_bytes(starter_path, "Q4_K_S") <= size + HEADER_SLACK


def test_cancel_kills_the_child_and_leaves_nothing(starter_path, tmp_path):
    dst = tmp_path / "out.gguf"
    cancel = threading.Event()
    seen: list[int] = []

    def progress(p: QuantizeProgress) -> None:
        seen.append(p.done)
        if p.done >= 3:
            cancel.set()

    with pytest.raises(QuantizeCancelled):
        quantize(starter_path, str(dst), "Q8_0", progress=progress, cancel=cancel)
    assert 3 <= seen[-1] < 272
    assert _files(tmp_path) == []
    assert _children(str(dst)) == []


def test_unknown_quant_is_refused_before_any_work(tmp_path):
    with pytest.raises(QuantizeError, match="Unknown quant 'Q9_Z'"):
        quantize("/nonexistent.gguf", str(tmp_path / "x.gguf"), "Q9_Z")


def test_a_file_that_is_not_a_gguf_is_named_as_such(tmp_path):
    src = tmp_path / "model.gguf"
    src.write_text("<html><body>Repository not found</body></html>")
    with pytest.raises(QuantizeError, match="model.gguf: This is a text file"):
        quantize(str(src), str(tmp_path / "out.gguf"), "Q4_K_M")
    assert sorted(_files(tmp_path)) == ["model.gguf"]


def test_too_little_space_is_refused_before_writing(starter_path, tmp_path, monkeypatch):
    monkeypatch.setattr(quantize_module, "_free_bytes", lambda folder: 10_000_000)
    with pytest.raises(QuantizeError, match=r"Not enough disk space .*: needs 10\d.\d MB, 10.0 MB free"):
        quantize(starter_path, str(tmp_path / "out.gguf"), "Q4_K_S")
    assert _files(tmp_path) == []


@contextlib.contextmanager
def _file_size_limit(n_bytes: int):
    """Writes past ``n_bytes`` fail (EFBIG) in this process and the children it starts (Python
    ignores SIGXFSZ, so the write fails instead of killing them)."""
    resource = pytest.importorskip("resource")  # POSIX only
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def test_a_write_failure_deletes_the_part_and_says_so(starter_path, tmp_path):
    with _file_size_limit(5_000_000), pytest.raises(QuantizeError, match="writing the file failed"):
        quantize(starter_path, str(tmp_path / "out.gguf"), "Q8_0")
    assert _files(tmp_path) == []


def test_a_full_disk_is_told_with_the_sizes(starter_path, tmp_path, monkeypatch):
    answers = iter([10**12])  # room before starting; then the disk is full, as after ENOSPC
    monkeypatch.setattr(quantize_module, "_free_bytes", lambda folder: next(answers, 4096))
    with _file_size_limit(5_000_000), pytest.raises(QuantizeError, match=r"needs 1\d\d.\d MB, 4.10 kB free"):
        quantize(starter_path, str(tmp_path / "out.gguf"), "Q8_0")
    assert _files(tmp_path) == []


def test_tensor_log_ignores_odd_lines_and_joins_split_ones():
    log = TensorLog()
    head = "[   2/   3]                 blk.0.attn_q.weight - [  576,   576,     1,     1], type =    f16, "
    lines = [
        "[   1/   3]   a.weight - [ 8, 8, 1, 1], type = f32, size =    0.000 MiB",
        "[   9/   3]   b.weight - [ 8, 8, 1, 1], type = f32, size = 1 MiB",  # done past total
        "[   1/   3]   b.weight - [ 8, 8, 1, 1], type = f32, size = 1 MiB",  # not past the last one
        "[   2/ 999]   b.weight - [ 8, 8, 1, 1], type = f32, size = 1 MiB",  # another total
        "[   2/   3]   b.weight - [ 8, x, 1, 1], type = f32, size = 1 MiB",  # a bad shape
        head,
        "====== llama_model_quantize_impl: did not find weights for blk.0.attn_q.weight",
        "converting to q4_K .. size =     0.63 MiB ->     0.18 MiB",
    ]
    done = [r for r in map(log.feed, lines) if r is not None]
    assert [(r.index, r.name, r.shape, r.new_type) for r in done] == [
        (1, "a.weight", (8, 8, 1, 1), None),
        (2, "blk.0.attn_q.weight", (576, 576, 1, 1), "q4_K"),
    ]


# -- reading importance matrices


def _dat(path: Path, entries: list[tuple[bytes, int, list[float]]], tail: bytes = b"") -> str:
    out = struct.pack("<i", len(entries))
    for name, ncall, values in entries:
        out += struct.pack("<i", len(name)) + name + struct.pack("<ii", ncall, len(values))
        out += np.asarray(values, "<f4").tobytes()
    path.write_bytes(out + tail)
    return str(path)


def test_legacy_dat_values_are_divided_by_their_call_count(tmp_path):
    tail = struct.pack("<ii", 7, 9) + b"wiki.txt\0"
    path = _dat(tmp_path / "m.dat", [(b"blk.0.attn_q.weight", 3, [3.0, 1.0, 0.5]), (b"blk.0.ffn_up.weight", 0, [2.0])],
                tail)  # fmt: skip
    m = load_imatrix(path)
    np.testing.assert_array_equal(m.entries["blk.0.attn_q.weight"], np.float32([3.0, 1.0, 0.5]) / np.float32(3))
    np.testing.assert_array_equal(m.entries["blk.0.ffn_up.weight"], [2.0])  # ncall 0: as stored
    assert (m.chunk_count, m.datasets) == (7, ["wiki.txt"])
    assert all(v.dtype == np.float32 for v in m.entries.values())


def _gguf(path: Path, tensors: dict[str, np.ndarray], *, metadata: bool = True) -> str:
    import gguf

    w = gguf.GGUFWriter(str(path), "imatrix")
    if metadata:
        w.add_string("general.type", "imatrix")
        w.add_array("imatrix.datasets", ["calib.txt"])
        w.add_uint32("imatrix.chunk_count", 4)
        w.add_uint32("imatrix.chunk_size", 512)
    for name, arr in tensors.items():
        w.add_tensor(name, arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return str(path)


def test_gguf_sums_are_divided_by_each_experts_count(tmp_path):
    sums = np.arange(1, 7, dtype=np.float32).reshape(2, 3)  # two experts of 3 columns
    path = _gguf(tmp_path / "m.gguf", {
        "blk.0.ffn_up_exps.weight.in_sum2": sums, "blk.0.ffn_up_exps.weight.counts": np.float32([[4], [0]]),
        "blk.0.attn_q.weight.in_sum2": np.float32([[8, 2]]), "blk.0.attn_q.weight.counts": np.float32([[2.5]]),
    })  # fmt: skip
    m = load_imatrix(path)
    np.testing.assert_array_equal(m.entries["blk.0.ffn_up_exps.weight"], [0.25, 0.5, 0.75, 1, 1, 1])  # no count: 1
    lround = np.float32(3)  # std::lround(2.5)
    np.testing.assert_array_equal(m.entries["blk.0.attn_q.weight"], np.float32([8, 2]) / lround)
    assert (m.datasets, m.chunk_count, m.chunk_size) == (["calib.txt"], 4, 512)


def test_our_gguf_writer_round_trips(tmp_path):
    sums = {"blk.1.attn_k.weight": np.float32([[2, 4, 6]]), "blk.0.x.weight": np.float32([[1], [9]])}
    counts = {"blk.1.attn_k.weight": np.float32([2]), "blk.0.x.weight": np.float32([1, 3])}
    path = str(tmp_path / "m.gguf")
    write_imatrix_gguf(path, sums, counts, datasets=["t"], chunk_count=1, chunk_size=2)
    h = read_gguf_header(path)
    assert [t.name for t in h.tensors][:2] == ["blk.0.x.weight.in_sum2", "blk.0.x.weight.counts"]
    assert h.metadata["general.type"] == "imatrix"
    m = read_imatrix(path)
    np.testing.assert_array_equal(m["blk.1.attn_k.weight"], [1, 2, 3])
    np.testing.assert_array_equal(m["blk.0.x.weight"], [1, 3])


HOSTILE_DAT = {
    "empty": b"",
    "no entries": struct.pack("<i", 0),
    "absurd entry count": struct.pack("<i", 2**31 - 1) + b"\0" * 64,
    "absurd name length": struct.pack("<ii", 1, 10**6) + b"\0" * 64,
    "unprintable name": struct.pack("<ii", 1, 3) + b"a\nb" + struct.pack("<iif", 1, 1, 1.0),
    "absurd value count": struct.pack("<ii", 1, 1) + b"a" + struct.pack("<ii", 1, 2**28 + 1) + b"\0" * 64,
    "more values than the file": struct.pack("<ii", 1, 1) + b"a" + struct.pack("<ii", 1, 1000) + b"\0" * 64,
    "cut in an entry": struct.pack("<ii", 2, 1) + b"a" + struct.pack("<iif", 1, 1, 1.0) + struct.pack("<i", 5),
    "not a number": struct.pack("<ii", 1, 1) + b"a" + struct.pack("<iif", 1, 1, float("nan")),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_DAT))
def test_damaged_dat_files_are_refused(tmp_path, case):
    path = tmp_path / "m.dat"
    path.write_bytes(HOSTILE_DAT[case])
    with pytest.raises(ImatrixError, match="m.dat is not a usable importance matrix"):
        read_imatrix(str(path))


def test_damaged_gguf_files_are_refused(tmp_path):
    f32 = np.float32
    cases = {
        "lacks llama-imatrix's metadata": ({"a.in_sum2": f32([[1]]), "a.counts": f32([[1]])}, False),
        "sums without counts": ({"a.in_sum2": f32([[1]])}, True),
        "3 sums for 2 counts": ({"a.in_sum2": f32([[1, 2, 3]]), "a.counts": f32([[1], [2]])}, True),
        "not stored as F32": ({"a.in_sum2": np.float16([[1]]), "a.counts": f32([[1]])}, True),
        "not numbers": ({"a.in_sum2": f32([[np.inf]]), "a.counts": f32([[1]])}, True),
    }
    for i, (why, (tensors, metadata)) in enumerate(cases.items()):
        path = _gguf(tmp_path / f"{i}.gguf", tensors, metadata=metadata)
        with pytest.raises(ImatrixError, match=why):
            read_imatrix(path)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(Path(_gguf(tmp_path / "ok.gguf", {"a.in_sum2": f32([[1] * 64]), "a.counts": f32([[1]])}))
                    .read_bytes()[:-64])  # fmt: skip
    with pytest.raises(ImatrixError, match="truncated"):
        read_imatrix(str(cut))


# -- computing one, and quantizing with it


@pytest.fixture(scope="module")
def computed(starter_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("imatrix") / "starter.imatrix.gguf"
    seen: list[tuple[int, int]] = []
    compute_imatrix(starter_path, TEXT[:3000], str(out), n_ctx=128, dataset="fidelity-text.txt",
                    progress=lambda p: seen.append((p.done, p.total)))  # fmt: skip
    return str(out), seen


def test_compute_imatrix_has_one_entry_per_matmul_weight(starter_path, computed):
    path, seen = computed
    n = seen[-1][1]
    assert n >= 2 and seen == [(i, n) for i in range(1, n + 1)]
    m = load_imatrix(path)
    weights = _matmul_weights(starter_path)
    assert "blk.0.attn_q.weight" in m.entries and set(m.entries) == set(weights)
    for name, values in m.entries.items():
        assert values.shape == (weights[name],) and np.isfinite(values).all() and (values >= 0).all(), name
        assert values.max() > 0, name
    assert (m.chunk_count, m.chunk_size, m.datasets) == (n, 128, ["fidelity-text.txt"])
    assert [x for x in os.listdir(os.path.dirname(path)) if x.endswith(".part")] == []


def test_compute_imatrix_refuses_a_text_too_short(starter_path, tmp_path):
    with pytest.raises(ImatrixError, match="chunks of 512 need at least 1,024"):
        compute_imatrix(starter_path, "Hello there.", str(tmp_path / "m.gguf"))
    assert _files(tmp_path) == []


def test_compute_imatrix_cancel_leaves_nothing(starter_path, tmp_path):
    cancel = threading.Event()
    with pytest.raises(ImatrixCancelled):
        compute_imatrix(starter_path, TEXT[:3000], str(tmp_path / "m.gguf"), n_ctx=64,
                        progress=lambda p: cancel.set(), cancel=cancel)  # fmt: skip
    assert _files(tmp_path) == []
    assert _children(str(tmp_path)) == []


def test_an_imatrix_changes_the_quantized_weights(starter_path, computed, tmp_path):
    plain, weighted = tmp_path / "plain.gguf", tmp_path / "weighted.gguf"
    quantize(starter_path, str(plain), "Q4_K_S")
    quantize(starter_path, str(weighted), "Q4_K_S", imatrix=computed[0])
    a, b = read_gguf_header(plain), read_gguf_header(weighted)
    assert [(t.name, t.type_id) for t in a.tensors] == [(t.name, t.type_id) for t in b.tensors]
    assert plain.read_bytes()[a.header_bytes :] != weighted.read_bytes()[b.header_bytes :]
    meta = b.metadata
    assert meta["quantize.imatrix.file"] == "starter.imatrix.gguf"
    assert meta["quantize.imatrix.entries_count"] == len(_matmul_weights(starter_path))
    assert meta["quantize.imatrix.dataset"] == "fidelity-text.txt"


def test_a_damaged_imatrix_stops_quantize_before_it_starts(starter_path, tmp_path):
    bad = tmp_path / "bad.dat"
    bad.write_bytes(HOSTILE_DAT["cut in an entry"])
    with pytest.raises(ImatrixError):
        quantize(starter_path, str(tmp_path / "out.gguf"), "Q4_K_S", imatrix=str(bad))
    assert _files(tmp_path) == ["bad.dat"]


# -- the collector's sums, on hand-made ggml tensors (an MoE model is too big for the test data)


class _HostGGML:
    """The two ggml calls the collector makes, for tensors whose data is a numpy array."""

    @staticmethod
    def ggml_nbytes(address: int) -> int:
        from desktop_app.core._imatrix_child import GGMLTensor

        t = GGMLTensor.from_address(address)
        return t.ne[0] * t.nb[0] + sum((t.ne[i] - 1) * t.nb[i] for i in range(1, 4))

    @staticmethod
    def ggml_backend_buffer_is_host(buffer: int) -> bool:
        return True


def _tensor(arr: np.ndarray, keep: list, *, name: bytes = b"", op: int = 0, type_id: int = 0):
    from desktop_app.core._imatrix_child import GGMLTensor

    t = GGMLTensor()
    t.type, t.op, t.name, t.buffer, t.data = type_id, op, name, 1, arr.ctypes.data
    ne, nb = list(arr.shape[::-1]) + [1] * (4 - arr.ndim), list(arr.strides[::-1]) + [arr.nbytes] * (4 - arr.ndim)
    for i in range(4):
        t.ne[i], t.nb[i] = ne[i], nb[i]
    keep += [arr, t]
    return t


def _node(op: int, *srcs, keep: list):
    from desktop_app.core._imatrix_child import GGMLTensor

    t = GGMLTensor()
    t.op = op
    for i, s in enumerate(srcs):
        t.src[i] = ctypes.pointer(s)
    keep.append(t)
    return t


def test_collector_sums_squares_per_weight_and_per_expert():
    from desktop_app.core._imatrix_child import Collector

    rng = np.random.default_rng(0)
    keep: list = []
    c = Collector(_HostGGML(), mul_mat=29, mul_mat_id=30)
    # dense: a [8 × 4] weight times 20 tokens of 8 values
    x = rng.standard_normal((20, 8)).astype(np.float32)
    dense = _node(29, _tensor(np.zeros((4, 8), np.float16), keep, name=b"blk.0.attn_q.weight", type_id=1),
                  _tensor(x, keep), keep=keep)  # fmt: skip
    assert c.wanted(dense) and c.callback(ctypes.addressof(dense), False, None)
    np.testing.assert_allclose(c.sums["blk.0.attn_q.weight"][0], (x.astype(np.float64) ** 2).sum(0))
    assert c.counts["blk.0.attn_q.weight"].tolist() == [20]
    few = _node(29, _tensor(np.zeros((4, 8), np.float16), keep, name=b"blk.0.attn_q.weight", type_id=1),
                _tensor(x[:15], keep), keep=keep)  # fmt: skip
    out = _node(29, _tensor(np.zeros((4, 8), np.float16), keep, name=b"output.weight", type_id=1),
                _tensor(x, keep), keep=keep)  # fmt: skip
    assert not c.wanted(few) and not c.wanted(out)
    # experts: 3 experts of [8 × 4], 5 tokens each routed to 2 of them, inputs broadcast (ne11 = 1)
    ids = np.int32([[0, 2], [1, 2], [2, 0], [2, 1], [0, 1]])
    xe = rng.standard_normal((5, 1, 8)).astype(np.float32)
    experts = _node(30, _tensor(np.zeros((3, 4, 8), np.float16), keep, name=b"blk.0.ffn_up_exps.weight", type_id=1),
                    _tensor(xe, keep), _tensor(ids, keep, type_id=26), keep=keep)  # fmt: skip
    assert c.wanted(experts) and c.callback(ctypes.addressof(experts), False, None)
    want, counts = np.zeros((3, 8)), np.zeros(3, np.int64)
    for row in range(5):
        for idx in range(2):
            want[ids[row, idx]] += xe[row, 0].astype(np.float64) ** 2
            counts[ids[row, idx]] += 1
    np.testing.assert_allclose(c.sums["blk.0.ffn_up_exps.weight"], want)
    assert c.counts["blk.0.ffn_up_exps.weight"].tolist() == counts.tolist()
    assert c.error == ""
