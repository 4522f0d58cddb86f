"""Comparing quants: llama.cpp's kl-divergence-base format, the statistics, and real runs."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from desktop_app.core.compare import CompareError, run_comparison
from desktop_app.core.compare.kld_file import (
    KLDFileError,
    dequantize_rows,
    iter_chunks,
    quantize_rows,
    read_header,
    row_width,
    rows_per_chunk,
    write_header,
)
from desktop_app.core.compare.report import to_html, to_json
from desktop_app.core.compare.stats import FidelityStats
from tests.gguf_factory import Q, write_gguf, write_model_header

N_VOCAB = 1001  # odd: the stored rows are padded to an even count


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def test_base_file_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    n_ctx, n_chunk = 32, 3
    tokens = rng.integers(0, N_VOCAB, n_ctx * n_chunk + 7).astype(np.int32)
    path = tmp_path / "base.kld"
    logits = [(rng.standard_normal((rows_per_chunk(n_ctx), N_VOCAB)) * 4).astype(np.float32) for _ in range(n_chunk)]
    with open(path, "wb") as f:
        write_header(f, n_ctx, N_VOCAB, n_chunk, tokens)
        for i, lg in enumerate(logits):
            targets = tokens[i * n_ctx + n_ctx // 2 + 1 : (i + 1) * n_ctx]
            q, nll = quantize_rows(lg, targets)
            assert q.shape == (rows_per_chunk(n_ctx), row_width(N_VOCAB))
            exact = -_log_softmax(lg)[np.arange(len(targets)), targets]
            assert np.allclose(nll, exact, atol=1e-4)
            f.write(q.tobytes())
    header = read_header(path)
    assert (header.n_ctx, header.n_vocab, header.n_chunk) == (n_ctx, N_VOCAB, n_chunk)
    assert np.array_equal(header.tokens, tokens[: n_ctx * n_chunk])
    for lg, rows in zip(logits, iter_chunks(path, header), strict=True):
        back, exact = dequantize_rows(rows, N_VOCAB), _log_softmax(lg)
        kept = exact > exact.max(axis=1, keepdims=True) - 16  # below the floor llama.cpp keeps the minimum
        step = (lg.max(axis=1) - np.maximum(lg.min(axis=1), lg.max(axis=1) - 16)) / 65535
        assert np.all(np.abs(back - exact)[kept] <= (step[:, None] * 0.51 + 1e-5).repeat(N_VOCAB, 1)[kept])
    # an interrupted reference run: the complete chunks are used
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 10])
    assert read_header(path).n_chunk == n_chunk - 1


def test_not_a_base_file(tmp_path):
    bad = tmp_path / "x.kld"
    bad.write_bytes(b"GGUF" + bytes(100))
    with pytest.raises(KLDFileError, match="not a llama.cpp kl-divergence-base file"):
        read_header(bad)
    bad.write_bytes(b"_logits_" + (512).to_bytes(4, "little") + (100).to_bytes(4, "little") + (5).to_bytes(4, "little"))
    with pytest.raises(KLDFileError, match="truncated"):
        read_header(bad)


def test_statistics_match_a_direct_computation():
    rng = np.random.default_rng(2)
    ref = (rng.standard_normal((300, N_VOCAB)) * 3).astype(np.float32)
    cand = ref + (rng.standard_normal(ref.shape) * 0.3).astype(np.float32)
    # the text's next tokens are among the likely ones (below max - 16 llama.cpp stores the floor)
    targets = np.argsort(-ref, axis=1)[np.arange(300), rng.integers(0, 20, 300)]
    q, _ = quantize_rows(ref, targets)
    st = FidelityStats()
    st.add_chunk(cand, q, targets)
    s = st.summary()
    lp, lq = _log_softmax(ref), _log_softmax(cand)
    kld = (np.exp(lp) * (lp - lq)).sum(axis=1)
    rows = np.arange(300)
    assert s["tokens_scored"] == 300
    assert s["kld_mean"] == pytest.approx(kld.mean(), rel=2e-3)
    assert s["kld_median"] == pytest.approx(np.median(kld), rel=5e-3)
    assert s["ppl"] == pytest.approx(np.exp(-lq[rows, targets].mean()), rel=1e-5)
    assert s["reference_ppl"] == pytest.approx(np.exp(-lp[rows, targets].mean()), rel=1e-4)
    assert s["same_top_p"] == pytest.approx((ref.argmax(1) == cand.argmax(1)).mean())
    dp = np.exp(lq[rows, targets]) - np.exp(lp[rows, targets])
    assert s["rms_dp"] == pytest.approx(np.sqrt((dp**2).mean()), rel=1e-3)
    assert 0.9 < s["nll_correlation"] <= 1.0
    same = FidelityStats()
    same.add_chunk(ref, q, targets)
    assert same.summary()["kld_mean"] < 1e-6 and same.summary()["same_top_p"] == 1.0


def test_a_model_against_itself(starter_path):
    seen = []
    c = run_comparison(starter_path, [starter_path], n_ctx=128, chunks=3, progress=seen.append)
    ref, [cand] = c.reference.stats, c.candidates
    assert c.chunks == 3 and ref["tokens_scored"] == 3 * rows_per_chunk(128)
    assert cand.stats["kld_mean"] < 1e-4 and cand.stats["same_top_p"] == 1.0
    assert cand.stats["ppl"] == pytest.approx(ref["ppl"], rel=1e-3)
    assert cand.stats["prompt_tokens_per_s"] > 0 and cand.stats["gen_tokens_per_s"] > 0 and cand.stats["ttft_s"] > 0
    assert cand.stats["peak_rss_bytes"] > cand.file_bytes // 2 and cand.stats["predicted_ram_bytes"] > 0
    assert c.reference.stats["predicted_ram_bytes"] == cand.stats["predicted_ram_bytes"]  # the same file
    assert c.reference_quantized  # Q4_1 as a reference: said in the report
    assert [p.role for p in seen].count("reference") == 3 and seen[-1].fraction == 1.0
    # the reference pass is kept: a second comparison only runs the candidate
    again = []
    run_comparison(starter_path, [starter_path], n_ctx=128, chunks=3, progress=again.append)
    assert {p.role for p in again} == {"candidate"}
    data = to_json(c)
    assert {"reference", "reference_ppl", "n_ctx", "chunks", "tokens_scored", "models"} <= data.keys()
    page = to_html(c)
    assert page.count("<svg") == 3 and "itself quantized" in page


def test_cancel_keeps_partial_results(starter_path):
    cancel = threading.Event()

    def progress(p):
        if p.role == "candidate" and p.chunk == 2:
            cancel.set()

    c = run_comparison(starter_path, [starter_path], n_ctx=128, chunks=6, progress=progress, cancel=cancel)
    [cand] = c.candidates
    assert c.cancelled and cand.partial and "Cancelled" in cand.error
    assert 2 <= cand.stats["chunks"] < 6 and "kld_mean" in cand.stats
    assert "partial" in to_html(c)


def test_bad_input_is_refused_with_a_reason(starter_path, tmp_path):
    other = write_gguf(tmp_path / "other.gguf", n_vocab=500)
    with pytest.raises(CompareError, match="different vocabulary"):
        run_comparison(starter_path, [str(other)])
    short = tmp_path / "short.txt"
    short.write_text("Only a few words here.")
    with pytest.raises(CompareError, match="needs at least"):
        run_comparison(starter_path, [starter_path], text_path=str(short), n_ctx=128)
    with pytest.raises(CompareError, match="no such file"):
        run_comparison(starter_path, [str(tmp_path / "missing.gguf")])
    huge = write_model_header(tmp_path / "huge-F16.gguf", n_layers=80, n_embd=8192, n_ff=28672, n_head=64,
                              n_head_kv=8, n_vocab=49152, quant=Q.F16)  # fmt: skip
    with pytest.raises(CompareError, match="does not fit in this computer's memory"):
        run_comparison(str(huge), [str(huge)])


def test_cli_compare_json_and_report(starter_path, tmp_path):
    from tests.test_cli import quantdesk

    report = tmp_path / "r.html"
    out = quantdesk("compare", starter_path, starter_path, "--ctx", "128", "--chunks", "2", "--json",
                    "--report", str(report))  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert {"reference", "reference_ppl", "n_ctx", "chunks", "tokens_scored", "models"} <= data.keys()
    keys = {"path", "file_bytes", "ppl", "ppl_ratio", "kld_mean", "kld_median", "kld_p99", "same_top_p", "rms_dp",
            "prompt_tokens_per_s", "gen_tokens_per_s"}  # fmt: skip
    assert all(keys <= m.keys() for m in data["models"]) and data["n_ctx"] == 128 and data["chunks"] == 2
    assert 0 <= data["models"][1]["same_top_p"] <= 1 and report.read_text().startswith("<!doctype html>")
    nowhere = quantdesk("compare", starter_path, starter_path, "--ctx", "128", "--chunks", "1", "--json",
                        "--report", str(tmp_path / "no-folder" / "r.html"))  # fmt: skip
    assert nowhere.returncode == 1 and "could not write the report" in nowhere.stderr
    assert json.loads(nowhere.stdout)["chunks"] == 1  # the measurement is still printed
    bad = quantdesk("compare", starter_path, str(tmp_path / "nope.gguf"))
    assert bad.returncode == 2 and "no such file" in bad.stderr
