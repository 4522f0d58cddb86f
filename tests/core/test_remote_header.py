"""Reading GGUF headers from a Hub over HTTP Range, against a real local server."""

from __future__ import annotations

import pytest

from desktop_app.core.errors import NotAGGUFError
from desktop_app.core.gguf import read_gguf_header
from desktop_app.core.hub import HubFileNotFoundError, HubGatedError, HubRepoNotFoundError, HubUnreachableError
from desktop_app.core.hub.remote_header import fetch_model_headers
from desktop_app.core.hub.source import load_model_shape
from tests.gguf_factory import write_split


def test_starter_header_over_http_costs_under_two_percent(hub, starter_path):
    hub.add_repo("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", {"smollm2-q4_1.gguf": starter_path})
    remote = fetch_model_headers("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF")
    local = read_gguf_header(starter_path)
    [h] = remote.headers
    assert h.metadata.keys() == local.metadata.keys()
    assert [(t.name, t.shape, t.type_id, t.offset) for t in h.tensors] == [
        (t.name, t.shape, t.type_id, t.offset) for t in local.tensors
    ]
    assert remote.bytes_fetched == hub.served["smollm2-q4_1.gguf"]
    assert remote.bytes_fetched < 0.02 * local.file_bytes
    assert len([r for r in hub.requests if r[0] == "GET" and "resolve" in r[1]]) <= 8
    # asked again: the cache answers after one HEAD
    served = hub.served["smollm2-q4_1.gguf"]
    again = fetch_model_headers("HuggingFaceTB/SmolLM2-135M-Instruct-GGUF", "smollm2-q4_1.gguf")
    assert again.from_cache and again.bytes_fetched == 0 and hub.served["smollm2-q4_1.gguf"] == served


def test_split_model_reads_every_part(hub, tmp_path):
    parts = write_split(tmp_path, "big-Q4_K_M", parts=3, n_layers=1)
    hub.add_repo("me/big", {p.name: p for p in parts})
    remote = fetch_model_headers("me/big")
    assert remote.filenames == [p.name for p in parts]
    assert len(remote.headers) == 3


def test_fit_accepts_a_hub_reference(hub, starter_path):
    hub.add_repo("me/smol", {"smol.gguf": starter_path})
    shape, source = load_model_shape("me/smol:smol.gguf")
    assert source == "hf://me/smol/smol.gguf"
    assert shape.n_layer == 30 and shape.n_vocab == 49152


def test_errors_are_typed_and_explained(hub, tmp_path, starter_path):
    with pytest.raises(HubRepoNotFoundError, match="no such repository"):
        fetch_model_headers("nobody/nothing")
    hub.add_repo("me/smol", {"smol.gguf": starter_path})
    with pytest.raises(HubFileNotFoundError):
        fetch_model_headers("me/smol", "missing.gguf")
    hub.add_repo("me/gated", {"g.gguf": starter_path}, gated=True)
    with pytest.raises(HubGatedError, match="token"):
        fetch_model_headers("me/gated", "g.gguf")
    html = tmp_path / "x.gguf"
    html.write_text("<html>error</html>" * 10)
    hub.add_repo("me/html", {"x.gguf": html})
    with pytest.raises(NotAGGUFError):
        fetch_model_headers("me/html", "x.gguf")
    hub.add_repo("me/empty", {"README.md": html})
    with pytest.raises(HubFileNotFoundError, match="no GGUF files"):
        fetch_model_headers("me/empty")


def test_server_errors_and_no_connection(hub, starter_path, monkeypatch):
    hub.add_repo("me/smol", {"smol.gguf": starter_path})
    hub.fail[r"/resolve/"] = 500
    with pytest.raises(Exception, match="error"):
        fetch_model_headers("me/smol", "smol.gguf")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(HubUnreachableError, match="Cannot reach"):
        fetch_model_headers("me/smol", "smol.gguf")
