"""Conversations: SQLite storage, variants, search, export and import."""

from __future__ import annotations

import json

import pytest

from desktop_app.core.chat.export import dumps_json, from_json, to_markdown
from desktop_app.core.chat.store import ChatStore, Conversation, Message


def _conv() -> Conversation:
    return Conversation(
        id=None,
        title="Colors",
        system_prompt="Be brief.",
        model_path="/models/smol.gguf",
        model_fingerprint="abc123",
        quant="Q4_1",
        llama_cpp_version="0.3.36",
        settings={"temperature": 0.0, "n_ctx": 4096},
        messages=[
            Message("user", ["Name three colors."]),
            Message(
                "assistant",
                ["Red, blue, green.", "Cyan, magenta, yellow."],
                chosen=1,
                stats=[{"ttft_s": 0.1, "tokens_per_s": 50.0, "completion_tokens": 5}, {}],
            ),  # fmt: skip
        ],
    )


def test_round_trip_and_reopen(tmp_path):
    store = ChatStore(tmp_path / "c.sqlite3")
    conv = _conv()
    cid = store.save(conv)
    store.close()
    again = ChatStore(tmp_path / "c.sqlite3").load(cid)  # as after a restart
    assert (
        again.messages[1].content == "Cyan, magenta, yellow." and again.messages[1].variants[0] == "Red, blue, green."
    )
    assert again.settings == {"temperature": 0.0, "n_ctx": 4096} and again.quant == "Q4_1"
    assert again.chat_messages() == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Name three colors."},
        {"role": "assistant", "content": "Cyan, magenta, yellow."},
    ]


def test_list_search_rename_delete(tmp_path):
    store = ChatStore(tmp_path / "c.sqlite3")
    a = store.save(_conv())
    b = store.save(Conversation(None, "Other", messages=[Message("user", ["about dragons"])]))
    assert [row[0] for row in store.list()] == [b, a]
    assert [row[0] for row in store.list("magenta")] == [a]
    assert [row[0] for row in store.list("dragons")] == [b]
    store.rename(a, "Renamed")
    assert store.load(a).title == "Renamed"
    store.delete(a)
    assert store.load(a) is None and [row[0] for row in store.list()] == [b]


def test_export_markdown_and_json_say_where_answers_came_from(tmp_path):
    conv = _conv()
    md = to_markdown(conv)
    assert "# Colors" in md and "`/models/smol.gguf` (Q4_1" in md and "llama-cpp-python 0.3.36" in md
    assert "Cyan, magenta, yellow." in md and "50.0 tokens/s" not in md  # stats of the chosen variant only
    data = json.loads(dumps_json(conv))
    assert data["model"] == {"path": "/models/smol.gguf", "fingerprint": "abc123", "quant": "Q4_1",
                             "llama_cpp_version": "0.3.36"}  # fmt: skip
    back = from_json(data)
    assert back.messages[1].variants == conv.messages[1].variants and back.messages[1].chosen == 1


def test_import_refuses_other_files():
    with pytest.raises(ValueError, match="not a QuantDesk conversation"):
        from_json({"messages": []})
    with pytest.raises(ValueError, match="damaged"):
        from_json({"format": "quantdesk-conversation", "version": 1})
    with pytest.raises(ValueError, match="newer QuantDesk"):
        from_json({"format": "quantdesk-conversation", "version": 99, "messages": []})
