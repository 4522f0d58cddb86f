"""A candidate's fidelity against the reference, computed as ``llama-perplexity --kl-divergence`` does.

The same sums, the same uncertainties, the same percentile interpolation (perplexity.cpp,
``kl_divergence``), so the numbers can be put next to llama.cpp's and match.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from desktop_app.core.compare.kld_file import LOG_PROB_FLOOR, dequantize_rows

ROW_BLOCK = 64  # rows scored at once: bounds the temporaries at 64 x n_vocab floats


@dataclass
class FidelityStats:
    """Sums over every scored token; per-token KLD and Δp kept for the distribution."""

    sum_nll: float = 0.0
    sum_nll2: float = 0.0
    sum_nll_base: float = 0.0
    sum_nll_base2: float = 0.0
    sum_nll_nll_base: float = 0.0
    sum_kld: float = 0.0
    sum_kld2: float = 0.0
    sum_p_diff: float = 0.0
    sum_p_diff2: float = 0.0
    sum_p_diff4: float = 0.0
    max_p_diff: float = 0.0
    n_same_top: int = 0
    count: int = 0
    kld_values: list[np.ndarray] = field(default_factory=list, repr=False)
    p_diff_values: list[np.ndarray] = field(default_factory=list, repr=False)

    def add_chunk(self, logits: np.ndarray, base_rows: np.ndarray, targets: np.ndarray) -> None:
        """Score one chunk: candidate logits (rows, n_vocab), the reference's stored rows, the targets."""
        n_vocab = logits.shape[1]
        for s in range(0, logits.shape[0], ROW_BLOCK):
            self._add_block(
                np.asarray(logits[s : s + ROW_BLOCK], dtype=np.float32), base_rows[s : s + ROW_BLOCK],
                np.asarray(targets[s : s + ROW_BLOCK]), n_vocab,
            )  # fmt: skip

    def _add_block(self, logits: np.ndarray, base_rows: np.ndarray, targets: np.ndarray, n_vocab: int) -> None:
        rows = np.arange(logits.shape[0])
        imax = logits.argmax(axis=1)
        vmax = logits[rows, imax]
        log_sum_exp = np.log(np.exp(logits - vmax[:, None]).sum(axis=1, dtype=np.float64)).astype(np.float32)
        nll = (vmax + log_sum_exp - logits[rows, targets]).astype(np.float32)
        base = dequantize_rows(base_rows, n_vocab)
        nll_base = -base[rows, targets]
        lse_full = (vmax + log_sum_exp)[:, None]
        p_base = np.where(base > -LOG_PROB_FLOOR, np.exp(base), np.float32(0.0))
        kld = (p_base * (base - logits + lse_full)).sum(axis=1, dtype=np.float64)
        same_top = int((base.argmax(axis=1) == imax).sum())
        p_diff = (np.exp(-nll) - np.exp(-nll_base)).astype(np.float32)
        nll64, base64, pd64 = nll.astype(np.float64), nll_base.astype(np.float64), p_diff.astype(np.float64)
        self.sum_nll += float(nll64.sum())
        self.sum_nll2 += float((nll64 * nll64).sum())
        self.sum_nll_base += float(base64.sum())
        self.sum_nll_base2 += float((base64 * base64).sum())
        self.sum_nll_nll_base += float((nll64 * base64).sum())
        self.sum_kld += float(kld.sum())
        self.sum_kld2 += float((kld * kld).sum())
        self.sum_p_diff += float(pd64.sum())
        self.sum_p_diff2 += float((pd64 * pd64).sum())
        self.sum_p_diff4 += float((pd64**4).sum())
        self.max_p_diff = max(self.max_p_diff, float(np.abs(p_diff).max(initial=0.0)))
        self.n_same_top += same_top
        self.count += len(rows)
        self.kld_values.append(kld.astype(np.float32))
        self.p_diff_values.append(p_diff)

    # -- the summary llama-perplexity prints ------------------------------------------------------
    def summary(self) -> dict:
        n = self.count
        if n == 0:
            return {"tokens_scored": 0}
        ln_ppl, ln_ppl_unc = _mean_unc(self.sum_nll, self.sum_nll2, n)
        ln_base, ln_base_unc = _mean_unc(self.sum_nll_base, self.sum_nll_base2, n)
        cov = _cov(self.sum_nll, self.sum_nll_base, self.sum_nll_nll_base, n)
        ratio_ln = ln_ppl - ln_base
        ratio_ln_unc = math.sqrt(max(ln_ppl_unc**2 + ln_base_unc**2 - 2.0 * cov, 0.0))
        kld_mean, kld_unc = _mean_unc(self.sum_kld, self.sum_kld2, n)
        mse, mse_unc = _mean_unc(self.sum_p_diff2, self.sum_p_diff4, n)
        rms = math.sqrt(mse)
        same = self.n_same_top / n
        klds = np.sort(np.concatenate(self.kld_values))
        pdiffs = np.sort(np.concatenate(self.p_diff_values))
        ppl, ppl_base = math.exp(ln_ppl), math.exp(ln_base)
        return {
            "tokens_scored": n,
            "ppl": ppl,
            "ppl_unc": ppl * ln_ppl_unc,
            "reference_ppl": ppl_base,
            "reference_ppl_unc": ppl_base * ln_base_unc,
            "nll_correlation": cov / (ln_ppl_unc * ln_base_unc) if ln_ppl_unc and ln_base_unc else None,
            "ln_ppl_ratio": ratio_ln,
            "ln_ppl_ratio_unc": ratio_ln_unc,
            "ppl_ratio": math.exp(ratio_ln),
            "ppl_ratio_unc": math.exp(ratio_ln) * ratio_ln_unc,
            "kld_mean": kld_mean,
            "kld_mean_unc": kld_unc,
            "kld_median": _median(klds),
            "kld_p90": _percentile(klds, 0.90),
            "kld_p99": _percentile(klds, 0.99),
            "kld_p999": _percentile(klds, 0.999),
            "kld_max": float(klds[-1]),
            "same_top_p": same,
            "same_top_p_unc": math.sqrt(same * (1 - same) / (n - 1)) if n > 1 else 0.0,
            "dp_mean": _mean_unc(self.sum_p_diff, self.sum_p_diff2, n)[0],
            "dp_median": _median(pdiffs),
            "dp_p01": _percentile(pdiffs, 0.01),
            "dp_p99": _percentile(pdiffs, 0.99),
            "dp_max_abs": self.max_p_diff,
            "rms_dp": rms,
            "rms_dp_unc": 0.5 / rms * mse_unc if rms else 0.0,
        }

    def kld_histogram(self, bins: int = 40) -> dict:
        """Counts of log10(KLD) per bin, for the distribution plot."""
        klds = np.concatenate(self.kld_values) if self.kld_values else np.zeros(0)
        logs = np.log10(np.clip(klds, 1e-8, None))
        counts, edges = np.histogram(logs, bins=bins, range=(-6.0, 1.0))
        return {"log10_edges": edges.round(4).tolist(), "counts": counts.tolist()}

    def to_state(self) -> dict:
        """The sums only (for partial results across a process boundary)."""
        d = asdict(self)
        d.pop("kld_values"), d.pop("p_diff_values")
        return d


def _mean_unc(s: float, s2: float, n: int) -> tuple[float, float]:
    if n < 1:
        return 0.0, 0.0
    f = s / n
    df = s2 / n - f * f
    return f, (math.sqrt(df / (n - 1)) if df > 0 and n > 10 else 0.0)


def _cov(a: float, b: float, ab: float, n: int) -> float:
    if n < 10:
        return 0.0
    return (ab / n - (a / n) * (b / n)) / (n - 1)


def _median(v: np.ndarray) -> float:
    n = len(v)
    return float(0.5 * (v[n // 2] + v[n // 2 - 1])) if n % 2 == 0 else float(v[n // 2])


def _percentile(v: np.ndarray, fraction: float) -> float:
    """perplexity.cpp's interpolation."""
    if fraction <= 0:
        return float(v[0])
    if fraction >= 1:
        return float(v[-1])
    p = fraction * (len(v) - 1)
    ip = int(p)
    p -= ip
    return float((1 - p) * v[ip] + p * v[min(ip + 1, len(v) - 1)])
