"""The `quantdesk` command: the window by default, and a sub-command per core capability.

Every sub-command takes ``--json`` and then prints exactly one JSON object on stdout; logs and
messages go to stderr. Imports are deferred into each command so that ``--version`` and
``hardware`` never pay for Qt, llama.cpp or evaluate.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from desktop_app import __version__
from desktop_app.core.gguf.quant_names import KV_CACHE_TYPES
from desktop_app.core.kinds import Verdict
from desktop_app.core.units import format_bytes, format_memory, format_params


def _emit(obj: dict) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def cmd_hardware(args: argparse.Namespace) -> int:
    from desktop_app.core.hardware import detect_hardware

    hw = detect_hardware(recheck_runtime=args.recheck)
    if args.json:
        _emit(hw.to_dict())
        return 0
    c = hw.cpu
    print(f"CPU     {c.name} — {c.physical_cores} cores, {c.logical_cores} threads ({c.architecture})")
    print(f"        features: {' '.join(c.features) or 'unknown'}")
    print(f"RAM     {format_memory(hw.ram.total_bytes)} total, {format_memory(hw.ram.available_bytes)} available")
    if not hw.gpus:
        print("GPU     none found")
    for g in hw.gpus:
        mem = "unified memory" if g.unified_memory else "dedicated VRAM"
        print(
            f"GPU     {g.name} ({g.vendor}, {g.backend}) — {format_memory(g.vram_total_bytes)} total, "
            f"{format_memory(g.vram_free_bytes)} free, {mem} [{g.source}]"
        )
    ll = hw.llama_cpp
    if ll.installed:
        print(
            f"llama.cpp  llama-cpp-python {ll.version} (ggml {ll.ggml_version or '?'}), "
            f"backends: {', '.join(ll.backends) or '?'}"
        )
        print(f"           GPU offload: {'yes' if ll.gpu_offload_supported else 'no'}")
        for d in ll.devices:
            print(f"           device {d.name}: {d.description} ({d.type})")
        rt = ll.runtime
        if rt is not None:
            speed = (f", checked at {rt.checked_tokens_per_s:.1f} tokens/s on {rt.check_model}"
                     if rt.checked_tokens_per_s else "")  # fmt: skip
            print(f"           runtime: {rt.label}, {rt.threads} threads ({rt.threads_basis}){speed}")
            print(f"           {rt.reason}")
    if ll.error and not (ll.runtime is not None and ll.error == ll.runtime.reason):
        print(f"           problem: {ll.error}")
    if ll.gpu_build_command:
        print(f"           To use your GPU: {ll.gpu_build_command}")
    elif ll.gpu_build_hint and not ll.gpu_offload_supported:
        print(f"           {ll.gpu_build_hint}")
    for note in hw.notes:
        if note != ll.error:
            print(f"note: {note}", file=sys.stderr)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from desktop_app.core.library import LibraryCache, scan_library
    from desktop_app.core.settings import SettingsStore

    store = SettingsStore()
    settings = store.load()
    if store.problem:
        print(store.problem, file=sys.stderr)
    for folder in args.folder or []:
        settings.add_folder(folder)
    result = scan_library(settings, cache=LibraryCache.load())
    if args.json:
        _emit(
            {
                "models": [_entry_json(e) for e in result.models],
                "unreadable": [
                    {"path": e.id, "paths": e.paths, "source": e.source, "reason": e.error} for e in result.problems
                ],
                "folder_problems": result.folder_problems,
                "notices": result.notices,
                "elapsed_s": round(result.elapsed_s, 4),
            }
        )
        return 0
    if not result.models:
        print("No GGUF models found. Add a folder with: quantdesk models --folder DIR")
    for e in result.models:
        i = e.info
        print(
            f"{i.name:<40} {i.architecture:<10} {format_params(i.n_params):>7} {i.quant:<8} "
            f"{format_bytes(e.file_bytes):>10} ctx {i.context_length or '?':<7} {e.source_label}"
        )
    for e in result.problems:
        print(f"UNREADABLE {e.id}: {e.error}")
    for line in result.folder_problems + result.notices:
        print(line, file=sys.stderr)
    return 0


def _entry_json(e) -> dict:
    i = e.info
    return {
        "path": e.id,
        "paths": e.paths,
        "name": i.name,
        "title": i.title,
        "source": e.source,
        "repo_id": e.repo_id,
        "kind": i.kind,
        "architecture": i.architecture,
        "n_params": i.n_params,
        "quant": i.quant,
        "file_bytes": e.file_bytes,
        "shards": i.n_shards,
        "context_length": i.context_length,
        "n_layers": i.n_layers,
        "bits_per_weight": round(i.bits_per_weight, 4),
        "tensor_types": {t.type_name: t.count for t in i.tensor_mix},
    }


def _threads(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("use a number of threads") from None
    if not 1 <= n <= 4096:
        raise argparse.ArgumentTypeError("the number of threads must be between 1 and 4096")
    return n


def _gpu_layers(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("use a number of layers or 'auto'") from None
    if n < 0:
        raise argparse.ArgumentTypeError("the number of GPU layers cannot be negative")
    return n


def cmd_fit(args: argparse.Namespace) -> int:
    from desktop_app.core.errors import QuantDeskError
    from desktop_app.core.hardware import detect_hardware
    from desktop_app.core.hub.source import load_model
    from desktop_app.core.memory import Machine, Predictor, RunSettings
    from desktop_app.core.memory.explain import largest_fitting_quant, verdict_sentence

    try:
        shape, source, fetched = load_model(args.model)
    except (QuantDeskError, OSError) as exc:
        print(f"quantdesk fit: {exc}", file=sys.stderr)
        return 2
    hw = detect_hardware()
    machine = Machine.from_hardware(hw)
    settings = RunSettings(
        n_ctx=args.ctx or min(shape.n_ctx_train, 4096),
        n_gpu_layers=args.gpu_layers,
        kv_type=args.kv_type,
        flash_attn=args.flash_attn,
        n_ubatch=args.ubatch,
    )
    p = Predictor(shape, machine).predict(settings)
    smaller = largest_fitting_quant(shape, machine, settings) if p.verdict == Verdict.TOO_LARGE else None
    sentence = verdict_sentence(p, gpu_name=machine.gpu_name, smaller_quant=smaller)
    if args.json:
        _emit(
            {
                "model": {
                    "source": source,
                    "architecture": shape.architecture,
                    "n_params": shape.n_params,
                    "n_layers": shape.n_layer,
                    "file_type": shape.file_type,
                    "file_bytes": shape.file_bytes,
                    "header_bytes_fetched": fetched,
                },
                "settings": {
                    "n_ctx": p.n_ctx,
                    "n_gpu_layers": p.n_gpu_layers,
                    "kv_type": p.kv_type,
                    "flash_attn": p.flash_attn,
                    "n_ubatch": p.n_ubatch,
                },
                "ram": p.ram.to_dict(),
                "vram": p.vram.to_dict(),
                "free": {"ram_bytes": p.ram_free_bytes, "vram_bytes": p.vram_free_bytes},
                "verdict": p.verdict,
                "max_ctx": p.max_ctx,
                "summary": sentence,
                "smaller_quant_that_fits": smaller,
                "approximate": p.approximate,
                "notes": p.notes,
            }
        )
        return 0
    print(f"{source}: {shape.architecture}, {format_params(shape.n_params)} parameters, "
          f"{shape.file_type}, {format_bytes(shape.file_bytes)}")  # fmt: skip
    print(f"settings: context {p.n_ctx:,}, GPU layers {p.n_gpu_layers}/{p.n_layer + 1}, KV {p.kv_type}, "
          f"flash attention {'on' if p.flash_attn else 'off'}, ubatch {p.n_ubatch}")  # fmt: skip
    print(f"{'':14}{'RAM':>12}{'VRAM':>12}")
    ram, vram = p.ram.to_dict(), p.vram.to_dict()
    rows = [("weights", "weights_bytes"), ("KV cache", "kv_cache_bytes"), ("compute", "compute_bytes"),
            ("output", "output_bytes"), ("overhead", "overhead_bytes"), ("total", "total_bytes")]  # fmt: skip
    for label, key in rows:
        print(f"{label:14}{format_bytes(ram[key]):>12}{format_bytes(vram[key]):>12}")
    print(f"free          {format_bytes(p.ram_free_bytes):>12}{format_bytes(p.vram_free_bytes):>12}")
    print(sentence)
    if p.max_ctx:
        print(f"Largest context that fits: {p.max_ctx:,} tokens.")
    for note in p.notes:
        print(f"note: {note}")
    return 0


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
                    _emit({"text": text, **{k: stats[k] for k in (
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


def _hub_error(exc: Exception) -> int:
    print(f"quantdesk: {exc}", file=sys.stderr)
    return 2


def cmd_search(args: argparse.Namespace) -> int:
    from desktop_app.core.errors import QuantDeskError
    from desktop_app.core.hub.search import search_models

    try:
        results = search_models(args.query, sort=args.sort, gguf_only=not args.all, author=args.author,
                                limit=args.limit)  # fmt: skip
    except (QuantDeskError, ValueError) as exc:
        return _hub_error(exc)
    if args.json:
        _emit({"results": [r.to_dict() for r in results]})
        return 0
    if not results:
        print("No models found.")
    for r in results:
        params = format_params(r.params) if r.params else "?"
        print(f"{r.repo_id:<60} {params:>7} {r.downloads:>10,} downloads {r.likes:>6,} likes"
              f"{'  gated' if r.gated else ''}")  # fmt: skip
    return 0


def cmd_quants(args: argparse.Namespace) -> int:
    from desktop_app.core.errors import QuantDeskError
    from desktop_app.core.hardware import detect_hardware
    from desktop_app.core.hub.quants import repo_quants
    from desktop_app.core.memory import Machine, RunSettings

    machine = Machine.from_hardware(detect_hardware())
    try:
        rq = repo_quants(args.repo, machine, RunSettings(n_ctx=args.ctx, kv_type=args.kv_type), with_card=False)
    except QuantDeskError as exc:
        return _hub_error(exc)
    best, why = rq.recommended()
    if args.json:
        _emit(
            {
                "repo_id": rq.repo_id,
                "gated": rq.gated,
                "n_ctx": args.ctx,
                "recommended": best.filename if best else None,
                "recommended_why": why,
                "files": [
                    {
                        "filename": f.filename,
                        "quant": f.quant,
                        "size_bytes": f.size_bytes,
                        "shards": f.shards,
                        "parts": f.parts,
                        "sha256": f.sha256[0] if f.shards == 1 else f.sha256,
                        "bits_per_weight": round(f.bits_per_weight, 3) if f.bits_per_weight else None,
                        "header_bytes_fetched": f.header_bytes_fetched,
                        "fit": {
                            "verdict": f.prediction.verdict,
                            "ram_total_bytes": f.prediction.ram.total_bytes,
                            "vram_total_bytes": f.prediction.vram.total_bytes,
                            "n_gpu_layers": f.prediction.n_gpu_layers,
                        }
                        if f.prediction
                        else None,
                        "error": f.error or None,
                        "mmproj": f.mmproj,
                    }
                    for f in rq.files
                ],
            }
        )
        return 0
    for f in rq.files:
        fit = f.prediction.verdict if f.prediction else (f.error or "-")
        mark = "  <- recommended" if best is f else ""
        print(f"{f.quant:<8} {format_bytes(f.size_bytes):>10} {f.shards:>2} part(s)  {fit:<12} {f.filename}{mark}")
    print(why)
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    import threading
    import time

    from desktop_app.core.errors import QuantDeskError
    from desktop_app.core.hub.download import download_model
    from desktop_app.core.hub.quants import group_files
    from desktop_app.core.hub.remote_header import list_gguf_files

    try:
        names = list_gguf_files(args.repo)
        groups = group_files([(n, 0, "") for n in names])
        if args.file:
            chosen = [g for g in groups if args.file in (g.filename, *g.parts)]
        else:
            chosen = [g for g in groups if g.quant == (args.quant or "Q4_K_M").upper()]
        if not chosen:
            have = ", ".join(sorted({g.quant for g in groups})) or "none"
            raise QuantDeskError(f"{args.repo} has no such GGUF file (quants here: {have}).")
        target = chosen[0]
        last = [0.0]

        def progress(p) -> None:
            if args.json or time.monotonic() - last[0] < 0.5:
                return
            last[0] = time.monotonic()
            eta = f", {p.eta_s:.0f} s left" if p.eta_s else ""
            print(f"\r{p.phase} {format_bytes(p.bytes_done)} of {format_bytes(p.bytes_total)} "
                  f"({p.speed_bps / 1e6:.1f} MB/s{eta})   ", end="", file=sys.stderr, flush=True)  # fmt: skip

        result = download_model(args.repo, target.parts, progress=progress, cancel=threading.Event())
    except KeyboardInterrupt:
        print("\nDownload interrupted; run the same command again to resume.", file=sys.stderr)
        return 130
    except QuantDeskError as exc:
        return _hub_error(exc)
    if args.json:
        _emit({"path": result.path, "paths": result.paths, "bytes": result.bytes,
               "sha256": result.sha256[0] if len(result.sha256) == 1 else result.sha256,
               "resumed": result.resumed})  # fmt: skip
    else:
        print(f"\nDownloaded and verified: {result.path}", file=sys.stderr)
        print(result.path)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from desktop_app.core.compare import CompareCancelled, CompareError, run_comparison
    from desktop_app.core.compare.report import band, to_html, to_json
    from desktop_app.core.errors import QuantDeskError

    def progress(p) -> None:
        running = p.running
        extra = f", mean KLD {running['kld_mean']:.5f}" if "kld_mean" in running else ""
        print(f"\r{Path(p.model).name} ({p.role}): chunk {p.chunk}/{p.chunks}, PPL {running.get('ppl', 0):.3f}"
              f"{extra}   ", end="" if p.chunk < p.chunks else "\n", file=sys.stderr, flush=True)  # fmt: skip

    try:
        comparison = run_comparison(args.reference, args.candidates, text_path=args.text, n_ctx=args.ctx,
                                    chunks=args.chunks, n_threads=args.threads, progress=progress)  # fmt: skip
    except KeyboardInterrupt:
        print("\nCancelled.", file=sys.stderr)
        return 130
    except CompareCancelled as exc:
        print(f"quantdesk: {exc}", file=sys.stderr)
        return 130
    except (CompareError, QuantDeskError) as exc:
        print(f"quantdesk: {exc}", file=sys.stderr)
        return 2
    if args.report:
        Path(args.report).write_text(to_html(comparison), encoding="utf-8")
        print(f"Report written to {args.report}", file=sys.stderr)
    data = to_json(comparison)
    if args.json:
        _emit(data)
    else:
        if comparison.reference_quantized:
            print("Note: the reference is itself quantized; the numbers measure distance from it.", file=sys.stderr)
        print(f"Reference {Path(comparison.reference.path).name}: PPL {data['reference_ppl']:.4f} "
              f"({data['tokens_scored']:,} tokens, {data['chunks']} chunks of {data['n_ctx']})")  # fmt: skip
        for m in data["models"][1:]:
            if m["error"] and m["kld_mean"] is None:
                print(f"{Path(m['path']).name}: {m['error']}")
                continue
            print(f"{Path(m['path']).name}: {format_bytes(m['file_bytes'])}, PPL {m['ppl']:.4f} "
                  f"(ratio {m['ppl_ratio']:.4f}), mean KLD {m['kld_mean']:.5f}, p99 KLD {m['kld_p99']:.4f}, "
                  f"same top {m['same_top_p'] * 100:.2f} %, RMS Δp {m['rms_dp'] * 100:.2f} %, "
                  f"{m['prompt_tokens_per_s']:.0f}/{m['gen_tokens_per_s']:.1f} tok/s prompt/gen — {band(m['kld_mean'])}"
                  + (" (partial)" if m["partial"] else ""))  # fmt: skip
    failed = [m for m in data["models"] if m["error"]]
    return 1 if failed else 0


def cmd_gui(args: argparse.Namespace) -> int:
    try:
        from desktop_app.ui.app import run_gui
    except ImportError as exc:
        print(
            f"The window needs PySide6, which failed to import ({exc}). "
            f"Install it with: {sys.executable} -m pip install PySide6-Essentials",
            file=sys.stderr,
        )
        return 1
    return run_gui(screenshots_dir=getattr(args, "screenshots", None))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="quantdesk",
        description="Pick a quantized LLM that fits this machine, chat with it, compare quants. "
        "With no command, opens the window.",
    )
    parser.add_argument("--version", action="version", version=f"quantdesk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="also log to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("gui", help="open the window (the default)")
    p.add_argument("--screenshots", metavar="DIR", help="render every page to DIR/<page>.png and exit")
    p.set_defaults(func=cmd_gui)

    p = sub.add_parser("hardware", help="what this machine has and what llama.cpp can use")
    p.add_argument("--recheck", action="store_true", help="run the llama.cpp runtime check again")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_hardware)

    p = sub.add_parser("fit", help="predicted RAM and VRAM for a model at a context length")
    p.add_argument("model", help="a local .gguf file, or owner/repo[:file] on the Hugging Face Hub")
    p.add_argument("--ctx", type=int, default=0, help="context length in tokens (default: 4096 or less)")
    p.add_argument("--gpu-layers", type=_gpu_layers, default="auto", metavar="N|auto")
    p.add_argument("--kv-type", choices=list(KV_CACHE_TYPES), default="f16")
    p.add_argument("--flash-attn", choices=["on", "off", "auto"], default="auto")
    p.add_argument("--ubatch", type=int, default=512, help="micro-batch size (llama.cpp's n_ubatch)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_fit)

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
        type=_threads,
        default=None,
        help="threads for llama.cpp (default: the setting, else llama.cpp's: one per physical core)",
    )
    p.add_argument("--ctx", type=int, default=0, help="context length (default: 4096 or the model's, if less)")
    p.add_argument("--gpu-layers", type=_gpu_layers, default="auto", metavar="N|auto")
    p.add_argument("--force", action="store_true", help="load even when the prediction says it will not fit")
    p.add_argument("--json", action="store_true", help="print one JSON object (with --prompt)")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("search", help="search the Hugging Face Hub")
    p.add_argument("query", nargs="?", default="")
    p.add_argument("--sort", choices=["downloads", "likes", "trending", "updated"], default="downloads")
    p.add_argument("--author")
    p.add_argument("--all", action="store_true", help="not only repos with GGUF files")
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("quants", help="the quant files of a Hub repo, with their fit on this machine")
    p.add_argument("repo", help="owner/name")
    p.add_argument("--ctx", type=int, default=4096)
    p.add_argument("--kv-type", choices=list(KV_CACHE_TYPES), default="f16")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_quants)

    p = sub.add_parser("download", help="download a quant into the Hugging Face cache, resumable and verified")
    p.add_argument("repo", help="owner/name")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quant", help="e.g. Q4_K_M (the default)")
    g.add_argument("--file", help="an exact file name in the repo")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("compare", help="fidelity (PPL, KL divergence) and speed of quants against a reference")
    p.add_argument("reference", help="the reference GGUF (F16/BF16, or Q8_0 when F16 does not fit)")
    p.add_argument("candidates", nargs="+", help="the quants to compare with it")
    p.add_argument("--text", help="a text file to score (default: the text shipped with QuantDesk)")
    p.add_argument("--ctx", type=int, default=512, help="tokens per chunk (default 512, as llama-perplexity)")
    p.add_argument("--chunks", type=int, help="score at most this many chunks")
    p.add_argument("--threads", type=_threads, default=None, help="threads for llama.cpp (default: as for chat)")
    p.add_argument("--report", help="also write a self-contained HTML report here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("models", help="the GGUF models in the library")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--folder",
        action="append",
        metavar="DIR",
        help="also scan DIR this time (repeatable; use the app to add it for good)",
    )
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from desktop_app.core.logs import setup_logging

    try:
        setup_logging(verbose=args.verbose)
    except OSError as exc:
        print(f"warning: cannot write the log file ({exc})", file=sys.stderr)
    if args.command is None:
        return cmd_gui(args)
    if args.command not in ("gui",):
        _apply_thread_setting()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _apply_thread_setting() -> None:
    """The Settings page's thread count applies to the command line too."""
    from desktop_app.core.runtime import set_threads_override
    from desktop_app.core.settings import SettingsStore

    set_threads_override(SettingsStore().load().threads)


def gui_main() -> int:
    """Entry point of the GUI script (no console window on Windows)."""
    return main(["gui"])


if __name__ == "__main__":
    sys.exit(main())
