"""The malformed-GGUF campaign, rerun on demand: our reader against llama.cpp's, file by file.

The corpus: the named damage of tests/gguf_hostile.py, ~500 mutations of a small model
(truncations, bit flips, counts and lengths overwritten with extremes), a 33.5 MB metadata value,
a FIFO and a link loop. For each file:

* ours: read, shape and predict in this process (time, Python memory peak, and whether anything
  but a GGUFError escaped), and ``quantdesk models --folder`` over the whole corpus (wall time,
  peak memory of the child);
* llama.cpp: ``gguf_init_from_file`` and a full load, each in a child (tests/llama_referee.py), so
  an abort is counted, not suffered.

Printed: tracebacks, hangs, the worst time and memory, and the disagreements: files we accept that
llama.cpp refuses or aborts on (the target is 0: the user must read the reason before a load), and
files we refuse that llama.cpp would read (each listed with our reason, to be judged).

Run on demand:  python -m pytest tests/benchmarks/test_bench_hostile_gguf.py -s -o addopts=""
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

from desktop_app.core.errors import GGUFError
from desktop_app.core.gguf import read_model_headers
from desktop_app.core.gguf.checks import load_problem
from desktop_app.core.memory import Machine, Predictor, RunSettings
from desktop_app.core.memory.shape import model_shape

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gguf_hostile import big_metadata, duplicate_token, write_corpus  # noqa: E402

REFEREE = Path(__file__).resolve().parents[1] / "llama_referee.py"
MACHINE = Machine(ram_available_bytes=16 << 30, ram_total_bytes=24 << 30)


def _ours(path: Path) -> tuple[str, float, int]:
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        shape = model_shape(read_model_headers(path))
        Predictor(shape, MACHINE).predict(RunSettings(n_ctx=min(shape.n_ctx_train, 4096)))
        outcome = "ok"
    except GGUFError as exc:
        outcome = "refused: " + exc.reason
    except Exception as exc:  # counted as a traceback
        outcome = f"TRACEBACK {type(exc).__name__}: {exc}"
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return outcome, elapsed, peak


def _llama(path: Path) -> dict:
    try:
        r = subprocess.run([sys.executable, str(REFEREE), str(path), "--load", "--full"], capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"gguf": None, "crash": "timeout"}
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"gguf": None, "crash": f"exit {r.returncode}"}


def test_hostile_gguf_campaign(tmp_path):
    corpus = tmp_path / "corpus"
    paths = write_corpus(corpus)
    (corpus / "huge-metadata.gguf").write_bytes(big_metadata())
    (corpus / "duplicate-token.gguf").write_bytes(duplicate_token())
    paths += [corpus / "huge-metadata.gguf", corpus / "duplicate-token.gguf"]
    os.mkfifo(corpus / "pipe.gguf")
    (corpus / "loop-a.gguf").symlink_to(corpus / "loop-b.gguf")
    (corpus / "loop-b.gguf").symlink_to(corpus / "loop-a.gguf")
    print(f"\ncorpus: {len(paths)} files + a FIFO + a link loop")

    tracebacks, slowest, biggest = [], (0.0, ""), (0, "")
    accepted, refused = [], []
    for p in paths:
        outcome, elapsed, peak = _ours(p)
        slowest = max(slowest, (elapsed, p.name))
        biggest = max(biggest, (peak, p.name))
        if outcome.startswith("TRACEBACK"):
            tracebacks.append((p.name, outcome))
        (accepted if outcome == "ok" else refused).append((p, outcome))
    print(f"ours: {len(accepted)} accepted, {len(refused)} refused, {len(tracebacks)} tracebacks; "
          f"slowest {slowest[0] * 1000:.1f} ms ({slowest[1]}), largest Python peak {biggest[0] / 1e6:.1f} MB "
          f"({biggest[1]})")  # fmt: skip
    for name, text in tracebacks:
        print(f"  TRACEBACK {name}: {text}")

    # the CLI over the whole corpus, as a user would run it; the library cache goes to a fresh folder
    env = {**os.environ, "QUANTDESK_DATA_DIR": str(tmp_path / "data")}
    for run in ("first", "cached"):
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "desktop_app", "models", "--folder", str(corpus), "--json"],
                           capture_output=True, text=True, timeout=600, env=env)  # fmt: skip
        wall = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(f"quantdesk models --folder ({run}): exit {r.returncode}, {wall:.1f} s, peak RSS of the children "
              f"so far {max(peak, before) / 1024:.0f} MB, traceback in stderr: {'Traceback' in r.stderr}")  # fmt: skip
        assert "Traceback" not in r.stderr
    cache_files = list((tmp_path / "data").rglob("library-cache.json"))
    print("library cache: " + ", ".join(f"{f.name} {f.stat().st_size / 1e6:.2f} MB" for f in cache_files))

    # llama.cpp's verdict on every file we accept, and on every file we refuse
    disagreements, crashes, flagged, at_load, stricter = [], [], [], [], []
    for p, _ in accepted:
        ref = _llama(p)
        if ref.get("crash"):
            (flagged if load_problem(p) else crashes).append((p.name, ref["crash"]))
        elif not ref["gguf"]:  # llama.cpp's header reader refuses what ours accepted
            disagreements.append((p.name, ref.get("error")))
        elif not ref.get("load", True):  # the model does not make sense to llama.cpp (a missing tensor, …)
            at_load.append((p.name, ref.get("load_error")))
    for p, outcome in refused:
        ref = _llama(p)
        if ref.get("gguf") and ref.get("load"):
            stricter.append((p.name, outcome))
    print(
        f"accepted by us: header refused by llama.cpp {len(disagreements)}; llama.cpp aborts, unflagged "
        f"{len(crashes)}, flagged before the load {len(flagged)}; refused by llama.cpp's model loader with its "
        f"reason passed on {len(at_load)}. Refused by us, loaded by llama.cpp: {len(stricter)}"
    )
    for name, why in disagreements + crashes + flagged:
        print(f"  {name}: {why}")
    reasons = sorted({why.split("error loading model: ")[-1].split("'")[0] for _, why in at_load})
    print("  llama.cpp's reasons at load: " + "; ".join(reasons))
    for name, why in stricter:
        print(f"  stricter on {name}: {why[:160]}")
    assert not tracebacks
    assert not crashes
    assert not disagreements
