"""llama.cpp's ``--kl-divergence-base`` file: the reference model's log-probabilities, on disk.

The layout written by ``llama-perplexity --kl-divergence-base FILE`` (tools/perplexity/perplexity.cpp):

    "_logits_"                      8 bytes
    n_ctx, n_vocab, n_chunk         int32 each
    tokens                          n_chunk * n_ctx int32 (as tokenized; BOS is put in at eval time)
    per chunk, per scored token     nv = 2 * ((n_vocab + 1) // 2) + 4 uint16:
                                      floats scale and min_log_prob (the first four uint16),
                                      then n_vocab log-probabilities quantized to 16 bits

Each chunk scores its second half: tokens ``n_ctx // 2 + 1 … n_ctx - 1``, i.e.
``n_ctx - 1 - n_ctx // 2`` rows per chunk. The quantization mirrors llama.cpp's exactly (float32
arithmetic, rounding half to even) so files cross-check with ``llama-perplexity`` both ways.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from desktop_app.core.errors import (
    KLDFileError,  # noqa: F401 (re-exported)
)

MAGIC = b"_logits_"
LOG_PROB_FLOOR = 16.0  # log-probabilities below max - 16 are stored as the minimum


def row_width(n_vocab: int) -> int:
    """uint16 per scored token: two floats, then the vocabulary padded to an even count."""
    return 2 * ((n_vocab + 1) // 2) + 4


def rows_per_chunk(n_ctx: int) -> int:
    return n_ctx - 1 - n_ctx // 2


@dataclass
class KLDHeader:
    n_ctx: int
    n_vocab: int
    n_chunk: int
    tokens: np.ndarray  # int32, n_chunk * n_ctx
    data_offset: int

    @property
    def rows(self) -> int:
        return rows_per_chunk(self.n_ctx)

    @property
    def chunk_bytes(self) -> int:
        return self.rows * row_width(self.n_vocab) * 2

    def chunk_tokens(self, i: int) -> np.ndarray:
        return self.tokens[i * self.n_ctx : (i + 1) * self.n_ctx]


def write_header(f: BinaryIO, n_ctx: int, n_vocab: int, n_chunk: int, tokens: np.ndarray) -> None:
    tokens = np.asarray(tokens[: n_chunk * n_ctx], dtype="<i4")
    f.write(MAGIC + struct.pack("<iii", n_ctx, n_vocab, n_chunk) + tokens.tobytes())


def read_header(path: str | Path) -> KLDHeader:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(20)
            if len(head) < 20 or head[:8] != MAGIC:
                raise KLDFileError(f"{path.name} is not a llama.cpp kl-divergence-base file (no '_logits_' mark).")
            n_ctx, n_vocab, n_chunk = struct.unpack("<iii", head[8:])
            if not (8 <= n_ctx <= 1 << 20 and 1 <= n_vocab <= 1 << 22 and 1 <= n_chunk <= 1 << 20):
                raise KLDFileError(
                    f"{path.name}: implausible sizes (n_ctx {n_ctx}, n_vocab {n_vocab}, {n_chunk} chunks)."
                )
            raw = f.read(4 * n_ctx * n_chunk)
    except OSError as exc:
        raise KLDFileError(f"Cannot read {path}: {exc.strerror or exc}") from exc
    if len(raw) < 4 * n_ctx * n_chunk:
        raise KLDFileError(f"{path.name} is truncated inside its token list.")
    header = KLDHeader(n_ctx, n_vocab, n_chunk, np.frombuffer(raw, dtype="<i4"), 20 + len(raw))
    complete = (path.stat().st_size - header.data_offset) // header.chunk_bytes
    if complete < n_chunk:
        header.n_chunk = int(complete)  # an interrupted reference run: the chunks that are there
    return header


def iter_chunks(path: str | Path, header: KLDHeader) -> Iterator[np.ndarray]:
    """Each chunk's rows as a (rows, nv) uint16 array, read one chunk at a time (bounded memory)."""
    nv = row_width(header.n_vocab)
    with open(path, "rb") as f:
        f.seek(header.data_offset)
        for _ in range(header.n_chunk):
            raw = f.read(header.chunk_bytes)
            if len(raw) < header.chunk_bytes:
                raise KLDFileError(f"{Path(path).name} is truncated.")
            yield np.frombuffer(raw, dtype="<u2").reshape(header.rows, nv)


def quantize_rows(logits: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference side: (rows, nv) uint16 to write, and each row's NLL of its target token."""
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    n_rows, n_vocab = logits.shape
    out = np.zeros((n_rows, row_width(n_vocab)), dtype="<u2")
    vmax = logits.max(axis=1)
    vmin = np.maximum(logits.min(axis=1), vmax - np.float32(LOG_PROB_FLOOR))
    work = logits - vmax[:, None]
    np.exp(work, out=work)
    log_sum_exp = np.log(work.sum(axis=1, dtype=np.float64)).astype(np.float32)
    min_log_prob = (vmin - vmax - log_sum_exp).astype(np.float32)
    scale = ((vmax - vmin) / np.float32(65535.0)).astype(np.float32)
    head = np.empty((n_rows, 2), dtype=np.float32)
    head[:, 0], head[:, 1] = scale, min_log_prob
    out[:, :4] = head.view("<u2")
    with np.errstate(divide="ignore"):
        inv = np.where(scale != 0, np.float32(1.0) / scale, np.float32(0.0)).astype(np.float32)
    np.subtract(logits, vmin[:, None], out=work)
    work *= inv[:, None]
    np.rint(work, out=work)  # llama.cpp's nearest_int: round half to even
    np.clip(work, 0, 65535, out=work)  # logits at or below the floor round to <= 0: stored as 0, as llama.cpp does
    out[:, 4 : 4 + n_vocab] = work
    rows = np.arange(n_rows)
    nll = vmax.astype(np.float64) + log_sum_exp - logits[rows, targets]
    return out, nll


def dequantize_rows(rows: np.ndarray, n_vocab: int) -> np.ndarray:
    """(rows, n_vocab) float32 log-probabilities of the reference, as llama.cpp reads them back."""
    head = np.ascontiguousarray(rows[:, :4]).view(np.float32)
    scale, min_log_prob = head[:, 0:1], head[:, 1:2]
    return scale * rows[:, 4 : 4 + n_vocab].astype(np.float32) + min_log_prob
