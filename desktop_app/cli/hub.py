"""`quantdesk search`, `quants` and `download`: the Hugging Face Hub (HF_ENDPOINT honoured)."""

from __future__ import annotations

import argparse
import sys

from desktop_app.cli.common import emit
from desktop_app.core.gguf.quant_names import KV_CACHE_TYPES
from desktop_app.core.units import format_bytes, format_params


def register(sub) -> None:
    """Add this module's sub-commands to the parser."""
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
        emit({"results": [r.to_dict() for r in results]})
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
        emit(
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
        emit({"path": result.path, "paths": result.paths, "bytes": result.bytes,
               "sha256": result.sha256[0] if len(result.sha256) == 1 else result.sha256,
               "resumed": result.resumed})  # fmt: skip
    else:
        print(f"\nDownloaded and verified: {result.path}", file=sys.stderr)
        print(result.path)
    return 0
