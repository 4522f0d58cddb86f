"""`quantdesk compare`: fidelity (PPL, KL divergence) and speed of quants against a reference."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from desktop_app.cli.common import emit, threads_arg
from desktop_app.core.units import format_bytes


def register(sub) -> None:
    """Add this module's sub-commands to the parser."""
    p = sub.add_parser("compare", help="fidelity (PPL, KL divergence) and speed of quants against a reference")
    p.add_argument("reference", help="the reference GGUF (F16/BF16, or Q8_0 when F16 does not fit)")
    p.add_argument("candidates", nargs="+", help="the quants to compare with it")
    p.add_argument("--text", help="a text file to score (default: the text shipped with QuantDesk)")
    p.add_argument("--ctx", type=int, default=512, help="tokens per chunk (default 512, as llama-perplexity)")
    p.add_argument("--chunks", type=int, help="score at most this many chunks")
    p.add_argument("--threads", type=threads_arg, default=None, help="threads for llama.cpp (default: as for chat)")
    p.add_argument("--report", help="also write a self-contained HTML report here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from desktop_app.core.compare import CompareCancelled, CompareError, run_comparison
    from desktop_app.core.compare.report import band, to_html, to_json
    from desktop_app.core.errors import QuantDeskError
    from desktop_app.core.paths import write_text_atomic

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
    report_failed = False
    if args.report:
        try:
            write_text_atomic(args.report, to_html(comparison))
            print(f"Report written to {args.report}", file=sys.stderr)
        except OSError as exc:  # the comparison still prints below: an hour of measuring is not lost
            print(f"quantdesk: could not write the report {args.report}: {exc}", file=sys.stderr)
            report_failed = True
    data = to_json(comparison)
    if args.json:
        emit(data)
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
    return 1 if failed or report_failed else 0
