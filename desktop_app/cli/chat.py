"""`quantdesk chat`: one answer with --prompt, or a chat in the terminal, through the engine child."""

from __future__ import annotations

import argparse
import os
import sys

from desktop_app.cli.common import emit, gpu_layers_arg, threads_arg
from desktop_app.core.kinds import Verdict


def register(sub) -> None:
    """Add this module's sub-commands to the parser."""
    p = sub.add_parser("chat", help="one answer with --prompt, otherwise a chat in the terminal")
    p.add_argument("model", help="a local .gguf file")
    p.add_argument("--prompt", help="ask this, print the answer and exit")
    p.add_argument("--system", default="", help="system prompt")
    p.add_argument("--max-tokens", type=int, default=512)
    # llama.cpp's own sampling defaults; --temperature 0 is greedy, as in llama.cpp
    p.add_argument("--temperature", type=float, default=0.8, help="0 is greedy (default 0.8, as llama.cpp)")
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--min-p", type=float, default=0.05)
    p.add_argument("--repeat-penalty", type=float, default=1.0, help="1.0 is off (default, as llama.cpp)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument(
        "--threads",
        type=threads_arg,
        default=None,
        help="threads for llama.cpp (default: the setting, else llama.cpp's: one per physical core)",
    )
    p.add_argument("--ctx", type=int, default=0, help="context length (default: 4096 or the model's, if less)")
    p.add_argument("--gpu-layers", type=gpu_layers_arg, default="auto", metavar="N|auto")
    p.add_argument("--force", action="store_true", help="load even when the prediction says it will not fit")
    p.add_argument("--json", action="store_true", help="print one JSON object (with --prompt)")
    p.set_defaults(func=cmd_chat)


def cmd_chat(args: argparse.Namespace) -> int:
    from desktop_app.core.engine import EngineError, Sampling, SyncEngine
    from desktop_app.core.errors import QuantDeskError
    from desktop_app.core.hardware import detect_hardware
    from desktop_app.core.hub.source import load_model
    from desktop_app.core.memory import Machine, Predictor, RunSettings
    from desktop_app.core.memory.explain import verdict_sentence

    if not os.path.isfile(args.model):
        print(f"quantdesk chat: no such file: {args.model} (give a local .gguf; download Hub models first)",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        shape, _source, _ = load_model(args.model)
    except (QuantDeskError, OSError) as exc:
        print(f"quantdesk chat: {exc}", file=sys.stderr)
        return 2
    n_ctx = args.ctx or min(shape.n_ctx_train, 4096)
    machine = Machine.from_hardware(detect_hardware())
    p = Predictor(shape, machine).predict(RunSettings(n_ctx=n_ctx, n_gpu_layers=args.gpu_layers))
    if p.verdict == Verdict.TOO_LARGE and not args.force:
        print(f"quantdesk chat: {verdict_sentence(p, gpu_name=machine.gpu_name)} (use --force to try anyway)",
              file=sys.stderr)  # fmt: skip
        return 2
    sampling = Sampling(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
                        repeat_penalty=args.repeat_penalty, max_tokens=args.max_tokens, seed=args.seed)  # fmt: skip
    history: list[dict[str, str]] = [{"role": "system", "content": args.system}] if args.system else []
    try:
        with SyncEngine() as se:
            se.load(args.model, n_ctx=n_ctx, n_gpu_layers=p.n_gpu_layers, seed=args.seed, n_threads=args.threads,
                    has_template=bool(shape.tensors) and _has_template(args.model))  # fmt: skip
            if args.prompt is not None:
                history.append({"role": "user", "content": args.prompt})
                text, stats = _answer(se, history, sampling, echo=not args.json)
                if args.json:
                    emit({"text": text, **{k: stats[k] for k in (
                        "prompt_tokens", "completion_tokens", "ttft_s", "tokens_per_s")},
                        "finish_reason": stats["finish_reason"], "n_ctx": n_ctx,
                        "n_gpu_layers": p.n_gpu_layers})  # fmt: skip
                return 0
            print(f"Chatting with {os.path.basename(args.model)} ({n_ctx:,} context). "
                  "Ctrl+C stops an answer; /reset starts over; Ctrl+D or /exit quits.", file=sys.stderr)  # fmt: skip
            while True:
                try:
                    line = input("you> ")
                except EOFError:
                    print(file=sys.stderr)
                    return 0
                if line.strip() in ("/exit", "/quit"):
                    return 0
                if line.strip() == "/reset":
                    del history[1 if args.system else 0 :]
                    continue
                if not line.strip():
                    continue
                history.append({"role": "user", "content": line})
                text, _stats = _answer(se, history, sampling, echo=True)
                history.append({"role": "assistant", "content": text})
    except EngineError as exc:
        print(f"quantdesk chat: {exc}", file=sys.stderr)
        return 1


def _has_template(path: str) -> bool:
    from desktop_app.core.gguf import read_model_headers

    return isinstance(read_model_headers(path)[0].metadata.get("tokenizer.chat_template"), str)


def _answer(se, history, sampling, *, echo: bool) -> tuple[str, dict]:
    parts: list[str] = []
    stats: dict = {}
    events = se.stream(history, sampling)
    while True:
        try:
            ev = next(events)
        except StopIteration:
            break
        except KeyboardInterrupt:
            se.engine.stop()
            continue
        if ev.kind == "token":
            parts.append(ev.data["text"])
            if echo:
                sys.stdout.write(ev.data["text"])
                sys.stdout.flush()
        else:
            stats = ev.data
    if echo:
        sys.stdout.write("\n")
        print(f"[{stats.get('completion_tokens', 0)} tokens, {stats.get('tokens_per_s', 0):.1f} tokens/s, "
              f"first token {stats.get('ttft_s', 0):.2f} s{', stopped' if stats.get('stopped') else ''}]",
              file=sys.stderr)  # fmt: skip
    return "".join(parts), stats
