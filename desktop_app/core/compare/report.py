"""The comparison as JSON (the CLI contract) and as one self-contained HTML file with SVG plots."""

from __future__ import annotations

import html
import math
import time
from pathlib import Path

from desktop_app.core.compare.runner import Comparison, ModelResult
from desktop_app.core.units import format_bytes

# Where llama.cpp's published KLD tables put quants of 7-8B models (mean KLD vs the F16 model),
# as rough bands for context: smaller models lose more at the same quant level.
KLD_BANDS = [
    (0.0, 0.005, "like Q8_0: indistinguishable in practice"),
    (0.005, 0.02, "like Q6_K/Q5_K_M: very close"),
    (0.02, 0.06, "like Q4_K_M: small, sometimes noticeable"),
    (0.06, 0.2, "like Q3_K: clearly degraded"),
    (0.2, math.inf, "like Q2_K or worse: heavily degraded"),
]
PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"]


def band(kld_mean: float | None) -> str:
    if kld_mean is None:
        return ""
    return next(text for lo, hi, text in KLD_BANDS if lo <= kld_mean < hi)


def to_json(c: Comparison | None, extras: dict | None = None) -> dict:
    """The keys of the ``quantdesk compare --json`` contract, and the rest of what was measured."""
    if c is None:  # only answers and votes, no fidelity run
        return dict(extras or {})
    ref = c.reference.stats

    def model(r: ModelResult) -> dict:
        s = r.stats
        return {
            "path": r.path, "role": r.role, "file_bytes": r.file_bytes,
            "ppl": s.get("ppl"), "ppl_ratio": s.get("ppl_ratio"), "ppl_ratio_unc": s.get("ppl_ratio_unc"),
            "kld_mean": s.get("kld_mean"), "kld_median": s.get("kld_median"), "kld_p99": s.get("kld_p99"),
            "kld_p999": s.get("kld_p999"), "kld_max": s.get("kld_max"), "same_top_p": s.get("same_top_p"),
            "rms_dp": s.get("rms_dp"), "dp_mean": s.get("dp_mean"), "nll_correlation": s.get("nll_correlation"),
            "prompt_tokens_per_s": s.get("prompt_tokens_per_s"), "gen_tokens_per_s": s.get("gen_tokens_per_s"),
            "ttft_s": s.get("ttft_s"), "load_s": s.get("load_s"), "peak_rss_bytes": s.get("peak_rss_bytes"),
            "predicted_ram_bytes": s.get("predicted_ram_bytes"), "tokens_scored": s.get("tokens_scored"),
            "kld_band": band(s.get("kld_mean")), "partial": r.partial, "error": r.error or None,
        }  # fmt: skip

    return {
        "reference": c.reference.path,
        "reference_ppl": ref.get("ppl"),
        "reference_quantized": c.reference_quantized,
        "n_ctx": c.n_ctx,
        "chunks": c.chunks,
        "tokens_scored": ref.get("tokens_scored"),
        "text": c.text,
        "base_file": c.base_file,
        "cancelled": c.cancelled,
        "models": [model(c.reference)] + [model(r) for r in c.candidates],
        **(extras or {}),  # side_by_side, blind, summaries: what the other tabs measured
    }


# -- SVG plots (no plotting library: a few rectangles and circles) ---------------------------------
def _svg(width: int, height: int, body: str, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'font-family="sans-serif" font-size="11"><title>{html.escape(title)}</title>'
            f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>{body}</svg>')  # fmt: skip


def kld_distribution_svg(c: Comparison, width: int = 560, height: int = 260) -> str:
    """Histogram of per-token KLD (log scale) per candidate, as outlines."""
    left, right, top, bottom = 40, 10, 20, 36
    w, h = width - left - right, height - top - bottom
    series = [(r, hist) for r in c.candidates if (hist := r.stats.get("kld_histogram"))]
    peak = max((max(hist["counts"]) for _, hist in series), default=1) or 1
    body = [f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" stroke="#888"/>']
    for k, (r, hist) in enumerate(series):
        edges, counts = hist["log10_edges"], hist["counts"]
        span = edges[-1] - edges[0]
        pts = []
        for i, n in enumerate(counts):
            x0 = left + (edges[i] - edges[0]) / span * w
            x1 = left + (edges[i + 1] - edges[0]) / span * w
            y = top + h - n / peak * h
            pts += [f"{x0:.1f},{y:.1f}", f"{x1:.1f},{y:.1f}"]
        color = PALETTE[k % len(PALETTE)]
        body.append(f'<polyline points="{" ".join(pts)}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        body.append(f'<text x="{left + w - 4}" y="{top + 12 + 14 * k}" text-anchor="end" fill="{color}">'
                    f"{html.escape(Path(r.path).name)}</text>")  # fmt: skip
    for e in range(-6, 2):
        x = left + (e + 6) / 7 * w
        body.append(f'<text x="{x:.0f}" y="{top + h + 14}" text-anchor="middle">1e{e}</text>')
    body.append(f'<text x="{left + w / 2}" y="{height - 4}" text-anchor="middle">KL divergence per token</text>')
    return _svg(width, height, "".join(body), "KL-divergence distribution")


def size_vs_kld_svg(c: Comparison, width: int = 360, height: int = 260) -> str:
    left, right, top, bottom = 56, 16, 16, 36
    w, h = width - left - right, height - top - bottom
    pts = [(r.file_bytes, kld) for r in c.candidates if (kld := r.stats.get("kld_mean")) is not None]
    body = [f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" stroke="#888"/>',
            f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" stroke="#888"/>']  # fmt: skip
    if pts:
        max_size = max(p[0] for p in pts) * 1.1
        max_kld = max(p[1] for p in pts) * 1.2 or 1e-3
        for k, (r, (size, kld)) in enumerate(zip([r for r in c.candidates if r.stats.get("kld_mean") is not None],
                                                 pts, strict=True)):  # fmt: skip
            x, y = left + size / max_size * w, top + h - kld / max_kld * h
            color = PALETTE[k % len(PALETTE)]
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{color}"/>')
            body.append(f'<text x="{x + 7:.1f}" y="{y + 4:.1f}">{html.escape(_short(r.path))}</text>')
        body.append(f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{max_kld:.3g}</text>')
        body.append(f'<text x="{left + w}" y="{top + h + 14}" text-anchor="end">{format_bytes(int(max_size))}</text>')
    body.append(f'<text x="{left + w / 2}" y="{height - 4}" text-anchor="middle">file size</text>')
    body.append(f'<text x="12" y="{top + h / 2}" transform="rotate(-90 12 {top + h / 2})" '
                f'text-anchor="middle">mean KLD</text>')  # fmt: skip
    return _svg(width, height, "".join(body), "Size against mean KLD")


def speed_svg(c: Comparison, width: int = 360, height: int = 260) -> str:
    models = [c.reference, *c.candidates]
    vals = [(r, r.stats.get("gen_tokens_per_s") or 0.0, r.stats.get("prompt_tokens_per_s") or 0.0) for r in models]
    left, top, row = 90, 16, (height - 40) / max(len(vals), 1)
    peak = max((max(g, p) for _, g, p in vals), default=1.0) or 1.0
    w = width - left - 90
    body = []
    for i, (r, gen, prompt) in enumerate(vals):
        y = top + i * row
        body.append(f'<text x="{left - 6}" y="{y + row / 2}" text-anchor="end">{html.escape(_short(r.path))}</text>')
        body.append(f'<rect x="{left}" y="{y + 2}" width="{prompt / peak * w:.1f}" height="{row / 2 - 3:.1f}" '
                    f'fill="#93c5fd"/><text x="{left + prompt / peak * w + 4:.1f}" y="{y + row / 2 - 3:.1f}">'
                    f"{prompt:.0f} prompt</text>")  # fmt: skip
        body.append(f'<rect x="{left}" y="{y + row / 2}" width="{gen / peak * w:.1f}" height="{row / 2 - 3:.1f}" '
                    f'fill="#2563eb"/><text x="{left + gen / peak * w + 4:.1f}" y="{y + row - 5:.1f}">'
                    f"{gen:.0f} gen</text>")  # fmt: skip
    body.append(f'<text x="{left + w / 2}" y="{height - 4}" text-anchor="middle">tokens per second</text>')
    return _svg(width, height, "".join(body), "Speed")


def _short(path: str) -> str:
    """The quant name when the file name says it (Q4_K_M…), else the end of the name."""
    from desktop_app.core.hub.quants import quant_name

    q = quant_name(path)
    if q != "?":
        return q
    name = Path(path).stem
    return name if len(name) <= 14 else "…" + name[-13:]


def _fmt(v, spec: str = ".4f", pct: bool = False) -> str:
    if v is None:
        return "—"
    return f"{v * 100:.2f} %" if pct else format(v, spec)


def model_cells(m: dict) -> dict[str, str]:
    """One model of :func:`to_json` as display text, by column; the report and the page both use it."""
    return {
        "Size": format_bytes(m["file_bytes"]), "PPL": _fmt(m["ppl"]), "PPL ratio": _fmt(m["ppl_ratio"]),
        "Mean KLD": _fmt(m["kld_mean"], ".5f"), "Median KLD": _fmt(m["kld_median"], ".5f"),
        "KLD p99": _fmt(m["kld_p99"], ".4f"), "Same top": _fmt(m["same_top_p"], pct=True),
        "RMS Δp": _fmt(m["rms_dp"], pct=True), "Prompt tok/s": _fmt(m["prompt_tokens_per_s"], ".0f"),
        "Gen tok/s": _fmt(m["gen_tokens_per_s"], ".1f"), "TTFT": _fmt(m["ttft_s"], ".3f"),
        "Peak RAM": format_bytes(m["peak_rss_bytes"]) if m["peak_rss_bytes"] else "—",
        "Predicted RAM": format_bytes(m["predicted_ram_bytes"]) if m["predicted_ram_bytes"] else "—",
        "In context": m["kld_band"] or m["error"] or "",
    }  # fmt: skip


def _extras_html(extras: dict) -> str:
    parts = []
    if extras.get("summaries"):
        rows = "".join(
            f"<tr><td>{html.escape(Path(r['model']).name)} ({r['role']})</td>"
            + "".join(f"<td>{r[k].get(m, 0):.3f}</td>" if r.get(k) else "<td>—</td>"
                      for k in ("vs_written", "vs_reference") for m in ("rouge1", "rouge2", "rougeL"))
            + "</tr>" for r in extras["summaries"]
        )  # fmt: skip
        parts.append("<h2>Summaries (ROUGE F1)</h2><table><tr><th>Model</th><th>R-1 vs written</th>"
                     "<th>R-2 vs written</th><th>R-L vs written</th><th>R-1 vs reference</th><th>R-2 vs reference</th>"
                     f"<th>R-L vs reference</th></tr>{rows}</table>")  # fmt: skip
    blind = extras.get("blind")
    if blind and blind.get("votes"):
        rate, (lo, hi) = blind["b_win_rate"], blind["b_win_rate_ci95"]
        rate_text = (
            "no decided votes" if rate is None else f"{rate * 100:.0f} % (95 % CI {lo * 100:.0f}–{hi * 100:.0f} %)"
        )
        parts.append(f"<h2>Blind A/B</h2><p>A = {html.escape(Path(blind['model_a']).name)}, B = "
                     f"{html.escape(Path(blind['model_b']).name)}: {blind['votes']} votes, A better {blind['a_wins']}, "
                     f"B better {blind['b_wins']}, ties {blind['ties']}, both bad {blind['both_bad']}; "
                     f"B's win rate {rate_text}.</p>")  # fmt: skip
    if extras.get("side_by_side"):
        rows = "".join(
            f"<tr><td>{html.escape(p['prompt'])}</td><td>{html.escape(p['a'])}</td><td>{html.escape(p['b'])}</td>"
            f"<td>{'same' if p['diverge_token'] is None else 'token ' + str(p['diverge_token'])}</td></tr>"
            for p in extras["side_by_side"]["pairs"]
        )
        sb = extras["side_by_side"]
        parts.append(f"<h2>Side by side</h2><p>A = {html.escape(Path(sb['model_a']).name)}, B = "
                     f"{html.escape(Path(sb['model_b']).name)}, greedy.</p><table class=answers><tr><th>Prompt</th>"
                     f"<th>A</th><th>B</th><th>First difference</th></tr>{rows}</table>")  # fmt: skip
    return "".join(parts)


_PAGE_STYLE = """<style>body{font-family:system-ui,sans-serif;margin:2em;color:#111}table{border-collapse:collapse}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:right}td:first-child,td:last-child{text-align:left}
th{background:#f3f4f6}.answers td{text-align:left;vertical-align:top;white-space:pre-wrap}
.warn{color:#b45309}.plots{display:flex;flex-wrap:wrap;gap:1em}</style>"""


def to_html(c: Comparison | None, extras: dict | None = None) -> str:
    if c is None:
        body = _extras_html(extras or {})
        return (f'<!doctype html><html><head><meta charset="utf-8"><title>QuantDesk comparison</title>{_PAGE_STYLE}'
                f"</head><body><h1>What the smaller quant costs</h1>{body}</body></html>")  # fmt: skip
    data = to_json(c)
    head = ("Model", "Size", "PPL", "PPL ratio", "Mean KLD", "Median KLD", "KLD p99", "Same top", "RMS Δp",
            "Prompt tok/s", "Gen tok/s", "TTFT", "Peak RAM", "Predicted RAM", "In context")  # fmt: skip
    rows = []
    for m in data["models"]:
        label = "reference" if m["role"] == "reference" else ("partial" if m["partial"] else "")
        cells = model_cells(m)
        if m["ppl_ratio_unc"]:
            cells["PPL ratio"] += f" ± {m['ppl_ratio_unc']:.4f}"
        name = html.escape(Path(m["path"]).name) + (f" <em>({label})</em>" if label else "")
        rows.append("<tr>" + "".join(f"<td>{x}</td>" for x in [name, *(html.escape(cells[h]) for h in head[1:])])
                    + "</tr>")  # fmt: skip
    warn = ("<p class=warn>The reference is itself quantized: the numbers measure distance from it, "
            "not from the original weights.</p>") if c.reference_quantized else ""  # fmt: skip
    cancelled = (
        "<p class=warn>The run was cancelled: rows marked partial cover the chunks done.</p>" if c.cancelled else ""
    )
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>QuantDesk comparison</title>
{_PAGE_STYLE}</head><body>
<h1>What the smaller quant costs</h1>
<p>Reference <b>{html.escape(Path(c.reference.path).name)}</b> · context {c.n_ctx} · {c.chunks} chunks ·
{data["tokens_scored"] or 0:,} tokens scored (the second half of each chunk, as llama-perplexity does) ·
text {html.escape(Path(c.text).name)} · {time.strftime("%Y-%m-%d %H:%M")}</p>{warn}{cancelled}
<table><tr>{"".join(f"<th>{h}{' s' if h == 'TTFT' else ''}</th>" for h in head)}</tr>{"".join(rows)}</table>
<p>KLD bands for context come from llama.cpp's published tables for 7-8B models; small models lose more.</p>
<div class=plots>{kld_distribution_svg(c)}{size_vs_kld_svg(c)}{speed_svg(c)}</div>
{_extras_html(extras or {})}
</body></html>"""
