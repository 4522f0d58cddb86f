"""ROUGE-1, ROUGE-2 and ROUGE-L F1 as an `evaluate` metric module, with no downloads.

QuantDesk ships this file and loads it by path (``evaluate.load("…/rouge_lite")``), so scoring works
offline. It follows Lin (2004): lowercased alphanumeric tokens, n-gram overlap for ROUGE-N and the
longest common subsequence for ROUGE-L, F1 per pair averaged over the corpus; when several
references are given for a prediction, the best-scoring one counts (as rouge_score does).
"""

import re

import datasets
import evaluate

_TOKEN = re.compile(r"[a-z0-9]+")

_DESCRIPTION = "ROUGE-1/2/L F1 (Lin, 2004) without external downloads."
_KWARGS = """
Args:
    predictions: list of strings.
    references: list of strings, or list of lists of strings (several references per prediction).
Returns:
    rouge1, rouge2, rougeL: mean F1 over the pairs, between 0 and 1.
"""


def _tokens(text):
    return _TOKEN.findall(text.lower())


def _ngrams(tokens, n):
    counts = {}
    for i in range(len(tokens) - n + 1):
        key = tuple(tokens[i : i + n])
        counts[key] = counts.get(key, 0) + 1
    return counts


def _f1(overlap, n_pred, n_ref):
    if overlap == 0 or n_pred == 0 or n_ref == 0:
        return 0.0
    p, r = overlap / n_pred, overlap / n_ref
    return 2 * p * r / (p + r)


def _rouge_n(pred, ref, n):
    a, b = _ngrams(pred, n), _ngrams(ref, n)
    overlap = sum(min(c, b.get(g, 0)) for g, c in a.items())
    return _f1(overlap, sum(a.values()), sum(b.values()))


def _lcs(a, b):
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def _rouge_l(pred, ref):
    return _f1(_lcs(pred, ref), len(pred), len(ref))


class RougeLite(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="Lin, C.-Y. (2004). ROUGE: A Package for Automatic Evaluation of Summaries.",
            inputs_description=_KWARGS,
            features=[
                datasets.Features(
                    {"predictions": datasets.Value("string"), "references": datasets.Sequence(datasets.Value("string"))}
                ),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
        )

    def _compute(self, predictions, references):
        scores = {"rouge1": [], "rouge2": [], "rougeL": []}
        for pred, refs in zip(predictions, references, strict=True):
            refs = [refs] if isinstance(refs, str) else list(refs)
            p = _tokens(pred)
            rs = [_tokens(r) for r in refs]
            scores["rouge1"].append(max(_rouge_n(p, r, 1) for r in rs))
            scores["rouge2"].append(max(_rouge_n(p, r, 2) for r in rs))
            scores["rougeL"].append(max(_rouge_l(p, r) for r in rs))
        n = max(len(predictions), 1)
        return {k: sum(v) / n for k, v in scores.items()}
