"""`quantdesk convert` and `quantdesk imatrix`: Hugging Face checkpoints to GGUF, and quants of them."""

from __future__ import annotations

import argparse
import sys
import time

from desktop_app.cli.common import emit


def register(sub) -> None:
    """Add this module's sub-commands to the parser."""
    p = sub.add_parser("convert", help="a Hugging Face checkpoint (folder or owner/repo) to GGUF, and quantize it")
    p.add_argument("source", help="a checkpoint folder, owner/repo on the Hub, or an F16/BF16 GGUF to quantize")
    p.add_argument("--outtype", choices=["f16", "bf16", "q8_0"], default="f16", help="the converted file's type")
    p.add_argument("--quant", help="then quantize to this (e.g. Q4_K_M); the converted file is deleted unless --keep")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--imatrix", metavar="FILE", help="an importance matrix (llama-imatrix's GGUF or .dat)")
    g.add_argument(
        "--calibration",
        metavar="TEXT",
        help="compute an importance matrix from this text file ('default': QuantDesk's own text)",
    )
    p.add_argument("--keep", action="store_true", help="keep the converted F16/BF16/Q8_0 file beside the quant")
    p.add_argument("--outfile", metavar="OUT", help="the output file (default: the library's converted folder)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("imatrix", help="compute an importance matrix from a calibration text, as llama-imatrix")
    p.add_argument("model", help="a GGUF (F16 or BF16 gives the best matrix)")
    p.add_argument("--text", required=True, metavar="FILE", help="calibration text ('default': QuantDesk's own)")
    p.add_argument("--ctx", type=int, default=512, help="tokens per chunk (llama-imatrix's -c)")
    p.add_argument("-o", "--outfile", required=True, metavar="OUT")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_imatrix)


def _text(arg: str) -> str:
    from desktop_app.core.convert.calibration import default_calibration_text

    if arg == "default":
        return default_calibration_text()
    with open(arg, encoding="utf-8", errors="replace") as f:
        return f.read(64 * 1024 * 1024)


class _Reporter:
    """One progress line on stderr, rewritten at most twice a second."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.last = quiet, 0.0

    def __call__(self, p) -> None:
        if self.quiet or time.monotonic() - self.last < 0.5:
            return
        self.last = time.monotonic()
        print(f"\r{p.phase:<9} {100 * p.fraction:5.1f} %  {p.detail[:60]:<60}", end="", file=sys.stderr, flush=True)


def cmd_convert(args: argparse.Namespace) -> int:
    import threading

    from desktop_app.core.convert.pipeline import ConvertRequest, default_output_dir, run
    from desktop_app.core.errors import QuantDeskError

    try:
        req = ConvertRequest(args.source, str(default_output_dir()), args.outtype, args.quant, args.imatrix,
                             _text(args.calibration) if args.calibration else None, args.keep,
                             outfile=args.outfile)  # fmt: skip
        result = run(req, progress=_Reporter(args.json), cancel=threading.Event())
    except KeyboardInterrupt:
        print("\nCancelled; nothing half-made was kept (a Hub download resumes next time).", file=sys.stderr)
        return 130
    except (QuantDeskError, OSError) as exc:
        print(f"\nquantdesk: {exc}", file=sys.stderr)
        return 2
    if args.json:
        emit({"path": result.path, "bytes": result.bytes, "sha256": result.sha256, "outtype": result.outtype,
              "quant": result.quant, "seconds": round(result.seconds, 3),
              "intermediate": result.intermediate})  # fmt: skip
    else:
        print(f"\nWrote {result.path} ({result.bytes:,} bytes) in {result.seconds:.1f} s.", file=sys.stderr)
        print(result.path)
    return 0


def cmd_imatrix(args: argparse.Namespace) -> int:
    import threading

    from desktop_app.core.errors import QuantDeskError
    from desktop_app.core.imatrix import compute_imatrix, read_imatrix

    started = time.monotonic()
    try:
        compute_imatrix(args.model, _text(args.text), args.outfile, n_ctx=args.ctx, cancel=threading.Event())
        entries = len(read_imatrix(args.outfile))
    except KeyboardInterrupt:
        return 130
    except (QuantDeskError, OSError) as exc:
        print(f"quantdesk: {exc}", file=sys.stderr)
        return 2
    if args.json:
        emit({"path": args.outfile, "entries": entries, "seconds": round(time.monotonic() - started, 3)})
    else:
        print(args.outfile)
    return 0
