"""One runtime configuration in every process that runs llama.cpp, and in the memory prediction.

``faulty_cpu`` makes llama.cpp's default configuration die with SIGILL on any prompt of more than a
few tokens, in every child, as it does on CPUs that advertise AMX but fault on it. A child that
did not get the runtime check's choice would die here.
"""

from __future__ import annotations

import os
import signal

import pytest

from desktop_app.core.engine import EngineError, Sampling, SyncEngine
from desktop_app.core.hardware import detect_hardware
from desktop_app.core.memory import Machine, Predictor, RunSettings, model_shape
from desktop_app.core.runtime import ensure_runtime
from desktop_app.core.runtime.config import NO_REPACK

GREEDY = Sampling(temperature=0.0, max_tokens=16, seed=1)
ASK = [{"role": "user", "content": "Name three colors, please, in a short sentence."}]


def _check_model() -> str:
    from desktop_app.core.paths import app_paths
    from desktop_app.core.runtime.check_model import write_check_model

    return write_check_model(app_paths().cache_dir)


def test_on_a_faulty_cpu_chat_compare_measure_and_quantize_all_run(faulty_cpu, starter_path, tmp_path):
    from desktop_app.core.compare import run_comparison
    from desktop_app.core.compare.side_by_side import side_by_side
    from desktop_app.core.memory.measure import measure_allocations
    from desktop_app.core.quantize import quantize

    assert ensure_runtime().configuration == NO_REPACK
    with SyncEngine() as se:
        info = se.load(starter_path, n_ctx=512, seed=1)
        assert info["runtime"] == NO_REPACK
        text = "".join(ev.data["text"] for ev in se.stream(ASK, GREEDY) if ev.kind == "token")
    assert text
    comparison = run_comparison(starter_path, [starter_path], n_ctx=128, chunks=2)
    assert not comparison.candidates[0].error and comparison.candidates[0].stats["kld_mean"] < 1e-4
    assert "CPU_REPACK" not in measure_allocations(_check_model(), n_ctx=256).buffers.model
    out = tmp_path / "q8.gguf"
    quantize(starter_path, str(out), "Q8_0")
    assert out.stat().st_size > 100_000_000
    [pair] = side_by_side(starter_path, str(out), ["Say hi, then name a color."], max_tokens=8)
    assert pair.a.text and pair.b.text


def test_the_default_configuration_really_dies_there(faulty_cpu, starter_path):
    """The simulation is real enough to fail: a child given llama.cpp's defaults is killed."""
    from desktop_app.core import child
    from desktop_app.core.runtime.config import RUNTIME_ENV, RuntimeConfig

    env = child.child_env(**{RUNTIME_ENV: RuntimeConfig().to_json()})  # what a child that ignored the check runs
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "desktop_app.core.runtime._check_child", "64", "4", starter_path],
                          env=env, capture_output=True, timeout=120)  # fmt: skip
    assert proc.returncode == -signal.SIGILL


@pytest.mark.parametrize("faulty", [False, True])
def test_the_prediction_follows_what_the_runtime_allocates(faulty, request, fresh_runtime):
    """Q4_0 weights get a CPU_REPACK copy on AVX2/NEON with repacking on, none without: the prediction
    follows the configuration that will really run, byte for byte."""
    from desktop_app.core.gguf import read_model_headers
    from desktop_app.core.memory.measure import measure_allocations

    if faulty:
        request.getfixturevalue("faulty_cpu")
    path = _check_model()
    hw = detect_hardware()
    machine = Machine.from_hardware(hw)
    assert machine.repack == hw.llama_cpp.runtime.repack == (hw.llama_cpp.runtime.configuration != NO_REPACK)
    predicted = Predictor(model_shape(read_model_headers(path)), machine).predict(
        RunSettings(n_ctx=256, n_gpu_layers=0), with_max_ctx=False
    )
    measured = measure_allocations(path, n_ctx=256).buffers
    rounding = 0.005 * 1024 * 1024  # llama.cpp logs each buffer in MiB with two decimals
    mapped = predicted.ram.weights_bytes - predicted.ram.repack_bytes
    assert abs(mapped - measured.model["CPU_Mapped"]) <= rounding
    assert abs(predicted.ram.repack_bytes - measured.model.get("CPU_REPACK", 0)) <= rounding
    assert (predicted.ram.repack_bytes > 0) == ("CPU_REPACK" in measured.model) == machine.repack


def test_a_real_crash_mid_chat_after_the_check_is_still_a_clear_error(starter_path):
    ensure_runtime()
    with SyncEngine() as se:
        se.load(starter_path, n_ctx=512, seed=1)
        rid = se.engine.chat([{"role": "user", "content": "Tell a very long story about a dragon."}],
                             Sampling(max_tokens=400, seed=3))  # fmt: skip
        while True:
            ev = se.events.get(timeout=60)
            if ev.kind == "token" and ev.request_id == rid:
                os.kill(se.engine.pid, signal.SIGSEGV)
                break
        while ev.kind != "died":
            ev = se.events.get(timeout=30)
        assert "SIGSEGV (a crash inside llama.cpp)" in ev.data["message"]
        with pytest.raises(EngineError, match="not running"):
            se.engine.chat(ASK, GREEDY)
