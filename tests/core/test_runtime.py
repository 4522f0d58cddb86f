"""The llama.cpp runtime: checked once per build and CPU, a safer configuration where the default
crashes, the same configuration in every child, llama.cpp's own thread count."""

from __future__ import annotations

import json
import time

import pytest

from desktop_app.core.runtime import RuntimeConfig, default_threads, ensure_runtime, selfcheck, set_threads_override
from desktop_app.core.runtime.config import DEFAULT, NO_REPACK, RUNTIME_ENV, ladder
from desktop_app.core.runtime.threads import parse_cpu_list


# -- threads: llama.cpp's cpu_get_num_math() ------------------------------------------------------
def _sysfs(root, siblings: dict[int, str], p_cores: str | None = None, e_cores: str | None = None):
    for cpu, sib in siblings.items():
        topo = root / "system" / "cpu" / f"cpu{cpu}" / "topology"
        topo.mkdir(parents=True)
        (topo / "thread_siblings").write_text(sib + "\n")
    if p_cores is not None:
        (root / "cpu_core").mkdir()
        (root / "cpu_core" / "cpus").write_text(p_cores + "\n")
    if e_cores is not None:
        (root / "cpu_atom").mkdir()
        (root / "cpu_atom" / "cpus").write_text(e_cores + "\n")
    return root


def test_threads_are_physical_cores_not_half_the_logical_cpus(tmp_path):
    # 4 cores with SMT: llama-cpp-python would use cpu_count() // 2 = 4 too, but on a CPU without SMT...
    smt = _sysfs(tmp_path / "smt", {0: "03", 1: "03", 2: "0c", 3: "0c", 4: "30", 5: "30", 6: "c0", 7: "c0"})
    assert default_threads(system="Linux", sys_root=smt, logical=8) == (4, "physical cores")
    # ...like this 2-core machine or an Apple M-series, it would use half the cores; llama.cpp uses all
    no_smt = _sysfs(tmp_path / "nosmt", {0: "1", 1: "2"})
    assert default_threads(system="Linux", sys_root=no_smt, logical=2) == (2, "physical cores")


def test_threads_on_a_hybrid_intel_cpu_are_the_performance_cores(tmp_path):
    # 6 P-cores with SMT (cpus 0-11) and 8 E-cores (12-19), as an i7-12700H
    siblings = {c: f"{1 << (c - c % 2) | 1 << (c - c % 2 + 1):x}" for c in range(12)}
    siblings.update({c: f"{1 << c:x}" for c in range(12, 20)})
    root = _sysfs(tmp_path, siblings, p_cores="0-11", e_cores="12-19")
    assert default_threads(system="Linux", sys_root=root, logical=20) == (6, "performance cores")


def test_threads_on_apple_silicon_are_the_performance_cores():
    values = {"hw.perflevel0.physicalcpu": "8", "hw.physicalcpu": "12"}
    assert default_threads(system="Darwin", sysctl=values.get) == (8, "performance cores")
    assert default_threads(system="Darwin", sysctl={"hw.physicalcpu": "4"}.get) == (4, "physical cores")


def test_threads_fall_back_as_llama_cpp_does(tmp_path):
    assert default_threads(system="Linux", sys_root=tmp_path, logical=4) == (4, "logical CPUs")
    assert default_threads(system="Linux", sys_root=tmp_path, logical=16) == (8, "half the logical CPUs")


def test_cpu_lists_from_sysfs_and_hostile_ones():
    assert parse_cpu_list("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert parse_cpu_list("3-1") == [] and parse_cpu_list("0-99999999") == [] and parse_cpu_list("x") == []


# -- the configuration in the environment --------------------------------------------------------
def test_configuration_round_trips_and_distrusts_what_it_reads():
    c = RuntimeConfig(name=NO_REPACK, extra_bufts=False).with_threads(6)
    assert RuntimeConfig.from_env({RUNTIME_ENV: c.to_json()}) == c
    assert c.n_threads_batch == 6
    assert RuntimeConfig.from_env({RUNTIME_ENV: "{not json"}) == RuntimeConfig()
    hostile = json.dumps({"name": 3, "extra_bufts": "no", "n_threads": 10**9, "n_threads_batch": True})
    assert RuntimeConfig.from_env({RUNTIME_ENV: hostile}) == RuntimeConfig()


def test_the_ladder_ends_and_gets_safer():
    assert [c.name for c in ladder([])] == [DEFAULT, NO_REPACK]
    steps = ladder(["sapphirerapids", "icelake", "haswell"])
    assert [c.name for c in steps] == [DEFAULT, NO_REPACK, "cpu_icelake", "cpu_haswell"]
    assert all(not c.extra_bufts for c in steps[1:])
    assert steps[2].cpu_variant == "icelake"


# -- the check itself, with real child processes -------------------------------------------------
def test_the_check_runs_once_and_is_remembered(fresh_runtime, monkeypatch):
    t0 = time.perf_counter()
    first = ensure_runtime()
    took = time.perf_counter() - t0
    assert first.works and not first.remembered
    assert first.attempts[-1].ok and first.checked_tokens_per_s > 0 and first.checked_prompt_tokens_per_s > 0
    if first.configuration != DEFAULT:  # this machine faults on llama.cpp's defaults: the reason says so
        assert first.attempts[0].crashed and "QuantDesk runs llama.cpp without weight repacking" in first.reason
    assert first.threads == default_threads()[0]
    assert took < 30  # the benchmark holds it to under 3 s; here only that nothing hangs

    monkeypatch.setattr(selfcheck, "_attempt", lambda *a, **k: pytest.fail("checked again"))
    selfcheck._memo.clear()  # a new process: only the file remembers
    again = ensure_runtime()
    assert again.remembered and again.configuration == first.configuration and again.key == first.key
    assert first.busy_percent is not None and 0.0 <= first.busy_percent <= 100.0
    assert again.busy_percent == first.busy_percent  # remembered with the speeds it qualifies


def test_a_remembered_check_from_before_the_busy_figure_still_loads():
    """A result remembered by an earlier QuantDesk has no ``busy_percent``: it loads, and no note."""
    old = selfcheck.RuntimeChoice(configuration="default", reason="r", works=True, repack=True, cpu_variant="",
                                  threads=2, threads_basis="physical cores", checked_tokens_per_s=9.0,
                                  checked_prompt_tokens_per_s=90.0, check_model="m", check_s=1.0,
                                  checked_at=0.0)  # fmt: skip
    data = old.to_dict()
    del data["busy_percent"]
    back = selfcheck.RuntimeChoice.from_dict(data)
    assert back.busy_percent is None and back.busy_note == ""
    assert "70 % of the CPU" in selfcheck.RuntimeChoice.from_dict({**data, "busy_percent": 70.0}).busy_note


def test_the_check_loads_on_the_cpu_alone_even_where_llama_cpp_sees_a_gpu(monkeypatch):
    """With a GPU in its device list llama.cpp neither repacks weights nor runs large batches on the CPU,
    so the kernels that fault would go untested; the check hands llama.cpp an empty device list."""
    import ctypes

    import llama_cpp

    from desktop_app.core.runtime import _check_child

    seen = {}

    def load(path, params):
        seen["devices"] = params.devices
        seen["first"] = ctypes.c_void_p.from_address(params.devices).value if params.devices else "unread"
        seen["layers"] = params.n_gpu_layers
        return None  # stop there: a load that fails is reported, not crashed on

    monkeypatch.setattr(llama_cpp, "llama_model_load_from_file", load)
    error = _check_child._run_one(llama_cpp, "/x/model.gguf", 0, 8, 4, {}, ["no such file"], lambda *a: None)
    assert error.startswith("llama.cpp could not load model.gguf")
    assert seen["devices"] and seen["first"] is None and seen["layers"] == 0  # a list with only its NULL end


def test_a_new_build_or_cpu_is_checked_again(fresh_runtime, monkeypatch):
    first = ensure_runtime()
    calls = []
    real = selfcheck._attempt
    monkeypatch.setattr(selfcheck, "_attempt", lambda *a, **k: calls.append(a[0].name) or real(*a, **k))
    monkeypatch.setattr(selfcheck, "cpu_signature", lambda: "another CPU")
    second = ensure_runtime()
    assert calls and second.key != first.key and not second.remembered


def test_a_cpu_that_faults_on_the_default_gets_the_safer_configuration(faulty_cpu):
    choice = ensure_runtime(cpu_features=["AVX2", "AVX512", "AMX_INT8"])
    assert choice.works and choice.configuration == NO_REPACK and not choice.repack
    failed, ok = choice.attempts
    assert failed.configuration == DEFAULT and failed.crashed and "SIGILL" in failed.outcome
    assert "reading a 64-token prompt" in failed.outcome
    assert failed.gen_tokens_per_s > 0  # one token at a time still ran: the cost can be told
    assert ok.ok and ok.gen_tokens_per_s > 0
    assert choice.reason.startswith("This CPU advertises AMX but faults on it")
    assert "QuantDesk runs llama.cpp without weight repacking" in choice.reason
    assert "slower" in choice.reason or "about the same speed" in choice.reason


def test_a_cpu_where_nothing_works_is_said_once_not_looped(fresh_runtime, monkeypatch):
    from desktop_app.core.runtime.config import FAULT_ENV

    monkeypatch.setenv(FAULT_ENV, "*")
    choice = ensure_runtime()
    assert not choice.works and len(choice.attempts) >= 2  # the whole ladder, once (more with CPU variants)
    assert "every configuration" in choice.reason and "GGML_NATIVE=OFF" in choice.reason
    monkeypatch.setattr(selfcheck, "_attempt", lambda *a, **k: pytest.fail("checked again"))
    selfcheck._memo.clear()
    assert ensure_runtime().remembered


def test_without_the_starter_a_generated_model_is_checked(fresh_runtime, monkeypatch, tmp_path):
    from desktop_app.core import starter

    monkeypatch.setattr(starter, "find_starter_model", lambda: starter.StarterModel(None, "not installed"))
    models, label = selfcheck.check_models()
    assert len(models) == 1 and "generated" in label
    choice = ensure_runtime()
    assert choice.works and choice.checked_tokens_per_s > 0 and "generated" in choice.check_model


def test_a_full_disk_for_the_remembered_result_costs_a_check_not_a_crash(fresh_runtime, monkeypatch):
    def no_space(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(selfcheck.Path, "write_text", no_space)
    assert ensure_runtime().works  # nothing remembered, nothing raised


def test_threads_setting_reaches_children_and_the_report():
    set_threads_override(3)
    assert selfcheck.runtime_for_children().n_threads == 3
    choice = ensure_runtime()
    assert choice.threads == 3 and choice.threads_basis == "set in Settings"
    set_threads_override(0)
    assert selfcheck.runtime_for_children().n_threads == default_threads()[0]


# -- builds that keep backends as plug-ins (GGML_BACKEND_DL, GGML_CPU_ALL_VARIANTS) -----------------
def test_backends_of_a_plug_in_wheel_are_found_in_both_folders(tmp_path):
    from desktop_app.core.runtime.backends import backend_dirs, backend_files

    lib = tmp_path / "site-packages" / "llama_cpp" / "lib"
    bin_ = tmp_path / "site-packages" / "bin"
    lib.mkdir(parents=True)
    bin_.mkdir()
    for name in ("libllama.so", "libggml.so", "libggml.so.0", "libggml-base.so", "libggml-vulkan.so"):
        (lib / name).write_bytes(b"")
    for name in ("libggml-cpu-haswell.so", "libggml-cpu-x64.so", "libggml-vulkan.so", "libggml-rpc.so"):
        (bin_ / name).write_bytes(b"")
    dirs = backend_dirs(str(lib))
    assert dirs == [str(lib), str(bin_)]
    files = backend_files(dirs)
    assert set(files.cpu_variants) == {"haswell", "x64"} and files.cpu is None
    assert files.others == {"vulkan": str(lib / "libggml-vulkan.so"), "rpc": str(bin_ / "libggml-rpc.so")}
    assert backend_dirs(str(tmp_path / "nowhere" / "lib")) == [str(tmp_path / "nowhere" / "lib")]


def _build_has_cpu_variants() -> bool:
    from desktop_app.core.hardware.llama_build import llama_cpp_lib_dir
    from desktop_app.core.runtime.backends import backend_dirs, backend_files

    lib = llama_cpp_lib_dir()
    return bool(lib and len(backend_files(backend_dirs(lib)).cpu_variants) > 1)


@pytest.mark.skipif(not _build_has_cpu_variants(), reason="this llama.cpp build has a single CPU backend")
def test_a_lower_cpu_variant_when_the_defaults_fault(fresh_runtime, monkeypatch):
    from desktop_app.core.runtime.config import FAULT_ENV

    monkeypatch.setenv(FAULT_ENV, f"{DEFAULT},{NO_REPACK}")
    choice = ensure_runtime()
    assert choice.works and choice.cpu_variant and choice.configuration == f"cpu_{choice.cpu_variant}"
    assert [a.configuration for a in choice.attempts][:2] == [DEFAULT, NO_REPACK]
    assert f"with its {choice.cpu_variant} CPU variant" in choice.reason
