"""The `quantdesk` command as scripts use it: real child processes, JSON on stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from desktop_app import __version__
from tests.gguf_factory import write_gguf


def quantdesk(*args: str, env_extra: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "desktop_app", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_version():
    out = quantdesk("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"quantdesk {__version__}"


def test_hardware_json_has_the_contract_keys():
    out = quantdesk("hardware", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data["cpu"]) >= {"name", "physical_cores", "logical_cores", "features"}
    assert set(data["ram"]) >= {"total_bytes", "available_bytes"}
    assert isinstance(data["gpus"], list)
    for gpu in data["gpus"]:
        assert set(gpu) >= {"name", "vendor", "backend", "vram_total_bytes", "vram_free_bytes", "unified_memory"}
    assert set(data["llama_cpp"]) >= {"version", "gpu_offload_supported", "devices"}
    assert data["llama_cpp"]["version"] == "0.3.36"
    assert isinstance(data["ram"]["total_bytes"], int)


def test_fast_paths_import_no_heavy_library():
    script = """
import sys
from desktop_app.cli import main
import contextlib, io
with contextlib.redirect_stdout(io.StringIO()):
    main(["hardware", "--json"])
heavy = [m for m in ("PySide6", "llama_cpp", "evaluate", "numpy", "huggingface_hub") if m in sys.modules]
print(",".join(heavy) or "none")
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "none"


def test_models_json_lists_models_and_unreadable_files(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    write_gguf(lib / "tiny-Q4_K_M.gguf", n_layers=2)
    (lib / "broken.gguf").write_text("<html>")
    out = quantdesk("models", "--json", "--folder", str(lib))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    by_name = {m["name"]: m for m in data["models"]}
    tiny = by_name["tiny-Q4_K_M"]
    assert (tiny["architecture"], tiny["quant"], tiny["n_layers"], tiny["shards"]) == ("llama", "Q4_K_M", 2, 1)
    assert tiny["file_bytes"] == (lib / "tiny-Q4_K_M.gguf").stat().st_size
    assert by_name["SmolLM2-135M-Instruct.Q4_1"]["source"] == "starter"
    [bad] = data["unreadable"]
    assert bad["path"] == str(lib / "broken.gguf") and "not a GGUF model" in bad["reason"]


def test_models_human_output_mentions_problems(tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "x.gguf").write_bytes(b"GGUF")
    out = quantdesk("models", "--folder", str(lib))
    assert out.returncode == 0
    assert "SmolLM2-135M-Instruct.Q4_1" in out.stdout
    assert "UNREADABLE" in out.stdout and "truncated" in out.stdout


def test_log_file_is_written_in_the_data_folder(tmp_path):
    quantdesk("hardware")
    log = tmp_path / "quantdesk" / "logs" / "quantdesk.log"
    assert log.exists()


def test_fit_json_has_the_contract_keys(starter_path):
    out = quantdesk("fit", starter_path, "--ctx", "4096", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["model"] | {"header_bytes_fetched": None} == {
        "header_bytes_fetched": None,
        "source": starter_path,
        "architecture": "llama",
        "n_params": 134_515_008,
        "n_layers": 30,
        "file_type": "Q4_1",
        "file_bytes": 98_362_432,
    }
    assert data["settings"]["n_ctx"] == 4096 and data["settings"]["kv_type"] == "f16"
    for device in ("ram", "vram"):
        assert set(data[device]) >= {"weights_bytes", "kv_cache_bytes", "compute_bytes", "output_bytes",
                                     "overhead_bytes", "total_bytes"}  # fmt: skip
    assert data["ram"]["kv_cache_bytes"] == 4096 * 30 * 192 * 2 * 2
    assert data["verdict"] in ("cpu_only", "full_gpu", "partial_gpu")
    assert data["max_ctx"] == 8192


def test_fit_says_what_is_wrong_with_bad_input(tmp_path):
    out = quantdesk("fit", str(tmp_path / "missing.gguf"))
    assert out.returncode == 2 and "No such file" in out.stderr
    bad = tmp_path / "bad.gguf"
    bad.write_text("<html>")
    out = quantdesk("fit", str(bad))
    assert out.returncode == 2 and "not a GGUF model" in out.stderr


def test_fit_of_a_model_too_large_for_this_machine(tmp_path):
    from tests.gguf_factory import Q, write_model_header

    # a 400B-parameter F16 header (sparse file: no disk used) cannot fit any laptop or CI machine
    big = write_model_header(tmp_path / "huge-f16.gguf", n_layers=126, n_vocab=128256, n_embd=16384, n_head=128,
                             n_head_kv=8, n_ff=53248, quant=Q.F16)  # fmt: skip
    out = quantdesk("fit", str(big), "--ctx", "4096", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["verdict"] == "too_large" and data["max_ctx"] is None
    assert data["summary"].startswith("Needs ") and "more RAM" in data["summary"]
    assert data["model"]["header_bytes_fetched"] is None


def test_chat_json_has_the_contract_keys(starter_path):
    out = quantdesk("chat", starter_path, "--prompt", "Name three colors.", "--temperature", "0", "--max-tokens",
                    "16", "--seed", "1", "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) >= {"text", "prompt_tokens", "completion_tokens", "ttft_s", "tokens_per_s"}
    assert data["text"] and 0 < data["completion_tokens"] <= 16 and data["prompt_tokens"] > 0
    assert data["ttft_s"] > 0 and data["tokens_per_s"] > 0


def test_interactive_chat_in_the_terminal(starter_path):
    proc = subprocess.run(
        [sys.executable, "-m", "desktop_app", "chat", starter_path, "--temperature", "0", "--max-tokens", "12"],
        input="Hello!\n/reset\nWhat is 2+2?\n/exit\n", capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("you> ") == 4
    assert proc.stderr.count("tokens/s") == 2


def test_chat_refuses_missing_and_bad_files(tmp_path):
    out = quantdesk("chat", str(tmp_path / "nope.gguf"), "--prompt", "hi")
    assert out.returncode == 2 and "no such file" in out.stderr
    bad = tmp_path / "bad.gguf"
    bad.write_text("<html>")
    out = quantdesk("chat", str(bad), "--prompt", "hi")
    assert out.returncode == 2 and "not a GGUF model" in out.stderr


def test_search_quants_and_download_against_the_local_hub(hub, starter_path):
    hub.add_repo("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", {"smollm2-135m-instruct-q4_1.gguf": starter_path},
                 downloads=10, likes=2, params=134_515_008)  # fmt: skip
    repo = "HuggingFaceTB/SmolLM2-135M-Instruct-GGUF"
    out = quantdesk("search", "smollm2", "--json")
    assert out.returncode == 0, out.stderr
    [r] = json.loads(out.stdout)["results"]
    assert set(r) >= {"repo_id", "downloads", "likes", "last_modified", "gguf", "params"}
    assert (r["repo_id"], r["gguf"], r["params"]) == (repo, True, 134_515_008)
    out = quantdesk("quants", repo, "--ctx", "2048", "--json")
    assert out.returncode == 0, out.stderr
    [f] = json.loads(out.stdout)["files"]
    assert set(f) >= {"filename", "quant", "size_bytes", "shards", "sha256", "fit"}
    assert (f["quant"], f["size_bytes"], f["shards"]) == ("Q4_1", 98_362_432, 1)
    assert set(f["fit"]) >= {"verdict", "ram_total_bytes", "vram_total_bytes"} and f["fit"]["verdict"] == "cpu_only"
    out = quantdesk("download", repo, "--quant", "Q4_1", "--json")
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    assert set(d) >= {"path", "bytes", "sha256", "resumed"} and d["bytes"] == 98_362_432
    assert d["sha256"] == hub.repos[repo].sha256["smollm2-135m-instruct-q4_1.gguf"] and d["resumed"] is False
    out = quantdesk("download", repo, "--quant", "Q8_0")
    assert out.returncode == 2 and "quants here: Q4_1" in out.stderr


def test_hub_errors_on_the_command_line(hub):
    out = quantdesk("quants", "nobody/nothing")
    assert out.returncode == 2 and "no such repository" in out.stderr
    hub.add_repo("me/broken", {"b-Q4_0.gguf": Path(__file__)})
    hub.fail[r"/api/models/me/broken"] = 500  # (search retries a 500 for ~25 s: huggingface_hub's backoff)
    out = quantdesk("quants", "me/broken")
    assert out.returncode == 2 and "the Hub answered with an error (500)" in out.stderr
