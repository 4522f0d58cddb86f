"""Export conversations to Markdown and JSON (with where the answers came from); import JSON."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from desktop_app.core.chat.store import Conversation, Message

FORMAT = "quantdesk-conversation"
FORMAT_VERSION = 1


def to_json(conv: Conversation) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "title": conv.title,
        "system_prompt": conv.system_prompt,
        "model": {
            "path": conv.model_path,
            "fingerprint": conv.model_fingerprint,
            "quant": conv.quant,
            "llama_cpp_version": conv.llama_cpp_version,
        },
        "settings": conv.settings,
        "created_at": conv.created_at,
        "updated_at": conv.updated_at,
        "messages": [
            {"role": m.role, "variants": m.variants, "chosen": m.chosen, "stats": m.stats} for m in conv.messages
        ],
    }


def from_json(data: dict[str, Any]) -> Conversation:
    """Raises ValueError when the data is not a QuantDesk conversation export."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError("This file is not a QuantDesk conversation (exported as JSON from the Chat page).")
    if int(data.get("version", 0)) > FORMAT_VERSION:
        raise ValueError("This conversation was exported by a newer QuantDesk; update to import it.")
    try:
        model = data.get("model", {})
        msgs = []
        for m in data["messages"]:
            variants = [str(v) for v in m.get("variants") or [m.get("content", "")]]
            chosen = min(int(m.get("chosen", 0)), len(variants) - 1)
            if m["role"] not in ("user", "assistant", "system"):
                raise ValueError(f"unknown role {m['role']!r}")
            msgs.append(Message(m["role"], variants, chosen, list(m.get("stats") or [])))
        return Conversation(
            id=None, title=str(data.get("title") or "Imported conversation"),
            system_prompt=str(data.get("system_prompt") or ""), model_path=str(model.get("path", "")),
            model_fingerprint=str(model.get("fingerprint", "")), quant=str(model.get("quant", "")),
            llama_cpp_version=str(model.get("llama_cpp_version", "")), settings=dict(data.get("settings") or {}),
            messages=msgs, created_at=float(data.get("created_at") or 0), updated_at=float(data.get("updated_at") or 0),
        )  # fmt: skip
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"This conversation file is damaged ({exc}).") from exc


def dumps_json(conv: Conversation) -> str:
    return json.dumps(to_json(conv), indent=2, ensure_ascii=False)


def to_markdown(conv: Conversation) -> str:
    when = dt.datetime.fromtimestamp(conv.created_at or 0).strftime("%Y-%m-%d %H:%M")
    s = conv.settings
    lines = [
        f"# {conv.title}",
        "",
        f"- Model: `{conv.model_path}` ({conv.quant or 'unknown quant'}, fingerprint `{conv.model_fingerprint}`)",
        f"- llama.cpp: llama-cpp-python {conv.llama_cpp_version or '?'}",
        "- Settings: " + ", ".join(f"{k} = {v}" for k, v in sorted(s.items())) if s else "- Settings: defaults",
        f"- Started: {when}",
        "",
    ]
    if conv.system_prompt:
        lines += ["## System", "", conv.system_prompt, ""]
    for m in conv.messages:
        lines += [f"## {'You' if m.role == 'user' else 'Assistant'}", "", m.content, ""]
        st = m.stat
        if m.role == "assistant" and st:
            lines += [f"*{st.get('completion_tokens', '?')} tokens, {st.get('tokens_per_s', 0):.1f} tokens/s, "
                      f"first token after {st.get('ttft_s', 0):.2f} s*", ""]  # fmt: skip
    return "\n".join(lines)
