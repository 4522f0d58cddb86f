"""`quantdesk hardware`, `models` and `fit`: this machine, the library, and what fits."""

from __future__ import annotations

import argparse
import sys

from desktop_app.cli.common import emit, gpu_layers_arg
from desktop_app.core.gguf.quant_names import KV_CACHE_TYPES
from desktop_app.core.kinds import Verdict
from desktop_app.core.units import format_bytes, format_memory, format_params


def register(sub) -> None:
    """Add this module's sub-commands to the parser."""
    p = sub.add_parser("hardware", help="what this machine has and what llama.cpp can use")
    p.add_argument("--recheck", action="store_true", help="run the llama.cpp runtime check again")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_hardware)

    p = sub.add_parser("fit", help="predicted RAM and VRAM for a model at a context length")
    p.add_argument("model", help="a local .gguf file, or owner/repo[:file] on the Hugging Face Hub")
    p.add_argument("--ctx", type=int, default=0, help="context length in tokens (default: 4096 or less)")
    p.add_argument("--gpu-layers", type=gpu_layers_arg, default="auto", metavar="N|auto")
    p.add_argument("--kv-type", choices=list(KV_CACHE_TYPES), default="f16")
    p.add_argument("--flash-attn", choices=["on", "off", "auto"], default="auto")
    p.add_argument("--ubatch", type=int, default=512, help="micro-batch size (llama.cpp's n_ubatch)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_fit)

    p = sub.add_parser("models", help="the GGUF models in the library")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--folder",
        action="append",
        metavar="DIR",
        help="also scan DIR this time (repeatable; use the app to add it for good)",
    )
    p.set_defaults(func=cmd_models)


def cmd_hardware(args: argparse.Namespace) -> int:
    from desktop_app.core.hardware import detect_hardware

    hw = detect_hardware(recheck_runtime=args.recheck)
    if args.json:
        emit(hw.to_dict())
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
            speed = (f", checked at {rt.checked_tokens_per_s:.1f} tokens/s on the CPU with {rt.check_model}"
                     if rt.checked_tokens_per_s else "")  # fmt: skip
            print(f"           runtime: {rt.label}, {rt.threads} threads ({rt.threads_basis}){speed}")
            print(f"           {rt.reason}")
            if rt.busy_note:
                print(f"           ({rt.busy_note}: run `quantdesk hardware --recheck` when the computer is idle)")
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
        emit(
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
        emit(
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
