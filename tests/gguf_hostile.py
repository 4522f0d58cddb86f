"""Malformed and hostile GGUF files, written byte by byte (gguf.GGUFWriter refuses to write most of them).

``named_cases`` are the shapes of damage llama.cpp refuses or crashes on, each with the words our
reader's message must contain; ``mutations`` derives truncations, bit flips and overwritten counts
from a small valid model. The unit tests run a sample; the campaign benchmark runs them all and
holds the reader against llama.cpp's own ``gguf_init_from_file``.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
F32_TYPE, Q8_0_TYPE = 0, 8


def s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv(key: str | bytes, vtype: int, payload: bytes) -> bytes:
    return s(key) + struct.pack("<I", vtype) + payload


def kv_u32(key: str, value: int) -> bytes:
    return kv(key, U32, struct.pack("<I", value))


def kv_i32(key: str, value: int) -> bytes:
    return kv(key, I32, struct.pack("<i", value))


def kv_str(key: str, value: str | bytes) -> bytes:
    return kv(key, STR, s(value))


def kv_strs(key: str, items: list[str]) -> bytes:
    return kv(key, ARR, struct.pack("<IQ", STR, len(items)) + b"".join(s(i) for i in items))


def kv_arr(key: str, item_type: int, fmt: str, items: list) -> bytes:
    return kv(key, ARR, struct.pack("<IQ", item_type, len(items)) + struct.pack(f"<{len(items)}{fmt}", *items))


@dataclass
class T:
    """A tensor info: ``ne`` in ggml order (row length first); offset None: the next aligned one."""

    name: str | bytes
    ne: tuple[int, ...]
    type_id: int = F32_TYPE
    offset: int | None = None

    def n_bytes(self) -> int:
        n = 1
        for d in self.ne:
            n *= d
        return n * 4 if self.type_id == F32_TYPE else n // 32 * 34


@dataclass
class Model:
    """A tiny llama: loads in llama.cpp when left as it is."""

    kvs: list[bytes] = field(default_factory=list)
    tensors: list[T] = field(default_factory=list)
    alignment: int = 32
    version: int = 3
    n_kv: int | None = None  # None: the real count
    n_tensors: int | None = None

    def to_bytes(self) -> bytes:
        out = bytearray(b"GGUF")
        out += struct.pack("<I", self.version)
        n_t = len(self.tensors) if self.n_tensors is None else self.n_tensors
        n_kv = len(self.kvs) if self.n_kv is None else self.n_kv
        out += struct.pack("<QQ", n_t, n_kv)
        for item in self.kvs:
            out += item
        data_len = 0
        for t in self.tensors:
            off = data_len if t.offset is None else t.offset
            out += s(t.name) + struct.pack("<I", len(t.ne)) + struct.pack(f"<{len(t.ne)}Q", *t.ne)
            out += struct.pack("<IQ", t.type_id, off)
            data_len = max(data_len, _pad(off + _safe_bytes(t), self.alignment))
        out += b"\0" * (_pad(len(out), self.alignment) - len(out))
        out += b"\0" * min(data_len, 1 << 20)
        return bytes(out)


def _pad(n: int, to: int) -> int:
    return -(-n // to) * to if to > 0 else n


def _safe_bytes(t: T) -> int:
    try:
        return min(t.n_bytes(), 1 << 20)
    except OverflowError:
        return 0


def tiny_llama(*, n_layer: int = 1, n_embd: int = 32, n_vocab: int = 8, extra: list[bytes] | None = None,
               block_count: bytes | None = None) -> Model:  # fmt: skip
    """The smallest llama llama.cpp loads: every tensor F32, a byte-level vocabulary."""
    kvs = [
        kv_str("general.architecture", "llama"),
        block_count if block_count is not None else kv_u32("llama.block_count", n_layer),
        kv_u32("llama.context_length", 256),
        kv_u32("llama.embedding_length", n_embd),
        kv_u32("llama.feed_forward_length", 2 * n_embd),
        kv_u32("llama.attention.head_count", 2),
        kv_u32("llama.attention.head_count_kv", 2),
        kv(b"llama.attention.layer_norm_rms_epsilon", F32, struct.pack("<f", 1e-5)),
        kv_str("tokenizer.ggml.model", "llama"),
        kv_strs("tokenizer.ggml.tokens", [f"t{i}" for i in range(n_vocab)]),
        kv_arr("tokenizer.ggml.scores", F32, "f", [0.0] * n_vocab),
        kv_arr("tokenizer.ggml.token_type", I32, "i", [1] * n_vocab),
        *(extra or []),
    ]
    ff = 2 * n_embd
    tensors = [T("token_embd.weight", (n_embd, n_vocab)), T("output_norm.weight", (n_embd,))]
    for i in range(n_layer):
        tensors += [
            T(f"blk.{i}.attn_norm.weight", (n_embd,)),
            T(f"blk.{i}.attn_q.weight", (n_embd, n_embd)),
            T(f"blk.{i}.attn_k.weight", (n_embd, n_embd)),
            T(f"blk.{i}.attn_v.weight", (n_embd, n_embd)),
            T(f"blk.{i}.attn_output.weight", (n_embd, n_embd)),
            T(f"blk.{i}.ffn_norm.weight", (n_embd,)),
            T(f"blk.{i}.ffn_gate.weight", (n_embd, ff)),
            T(f"blk.{i}.ffn_up.weight", (n_embd, ff)),
            T(f"blk.{i}.ffn_down.weight", (ff, n_embd)),
        ]
    return Model(kvs=kvs, tensors=tensors)


def _nested(depth: int) -> bytes:
    payload = struct.pack("<IQ", U8, 1) + b"\1"
    for _ in range(depth - 1):
        payload = struct.pack("<IQ", ARR, 1) + payload
    return kv("evil.nested", ARR, payload)


@dataclass
class Case:
    name: str
    data: bytes
    words: str  # what our message must say ("" for files that must be accepted)


def named_cases() -> list[Case]:
    """Each damage llama.cpp refuses (or crashes on), with the words of our reason."""
    cases: list[Case] = [Case("valid", tiny_llama().to_bytes(), "")]

    def add(name: str, model: Model, words: str) -> None:
        cases.append(Case(name, model.to_bytes(), words))

    add("nested-array-2", tiny_llama(extra=[_nested(2)]), "array of arrays")
    add("nested-array-900", tiny_llama(extra=[_nested(900)]), "array of arrays")
    add("duplicate-key", tiny_llama(extra=[kv_u32("llama.context_length", 512)]), "appears twice")
    add("empty-key", tiny_llama(extra=[kv_u32("", 1)]), "empty name")
    m = tiny_llama()
    m.tensors.append(T("output_norm.weight", (32,)))
    add("duplicate-tensor", m, "appears twice")
    m = tiny_llama()
    m.tensors[1].name = "x" * 64
    add("tensor-name-64", m, "name of 64 bytes")
    add("alignment-u64", tiny_llama(extra=[kv("general.alignment", U64, struct.pack("<Q", 32))]), "uint32")
    add("alignment-u8", tiny_llama(extra=[kv("general.alignment", U8, b"\x20")]), "uint32")
    add("alignment-0", tiny_llama(extra=[kv_u32("general.alignment", 0)]), "power of two")
    add("alignment-48", tiny_llama(extra=[kv_u32("general.alignment", 48)]), "power of two")
    m = tiny_llama()
    m.tensors[1].ne = (32, 0)
    add("zero-dim", m, "dimension of 0")
    m = tiny_llama()
    m.tensors[1].ne = (1 << 63,)
    add("dim-over-int64", m, "more than 2^63")
    m = tiny_llama()
    m.tensors[2].offset = 0
    add("overlapping-offsets", m, "expects it at")
    m = tiny_llama()
    m.tensors[2].offset = 4096 + 4
    add("misaligned-offset", m, "expects it at")
    m = tiny_llama()
    m.tensors[3].offset = 1 << 40
    add("offset-far-away", m, "expects it at")
    add("block-count-0", tiny_llama(block_count=kv_u32("llama.block_count", 0)), "block_count is 0")
    add("block-count-minus-1", tiny_llama(block_count=kv_i32("llama.block_count", -1)), "block_count is -1")
    add("block-count-2^32-1", tiny_llama(block_count=kv_u32("llama.block_count", (1 << 32) - 1)), "block_count")
    add("block-count-10^7", tiny_llama(block_count=kv_u32("llama.block_count", 10**7)), "block_count")
    add("expert-count-huge", tiny_llama(extra=[kv("llama.expert_count", U64, struct.pack("<Q", 1 << 62))]),
        "expert_count")  # fmt: skip
    # a string array whose second length is near 2**64: the skip loop's position overflows
    bad_strings = kv("evil.strings", ARR, struct.pack("<IQ", STR, 100) + s("a") + struct.pack("<Q", (1 << 64) - 9))
    add("string-length-2^64", tiny_llama(extra=[bad_strings]), "")
    add("string-1GiB+", tiny_llama(extra=[kv("evil.s", STR, struct.pack("<Q", (1 << 30) + 1))]), "")
    add("array-count-2^63", tiny_llama(extra=[kv("evil.a", ARR, struct.pack("<IQ", U8, 1 << 63))]), "")
    m = tiny_llama()
    m.n_kv = (1 << 64) - 1
    add("kv-count-2^64", m, "")
    m = tiny_llama()
    m.n_tensors = 1 << 40
    add("tensor-count-2^40", m, "")
    m = tiny_llama()
    m.tensors[1].type_id = 4  # Q4_2: removed from ggml
    add("removed-type", m, "type 4")
    return [c for c in cases if c.name]


def duplicate_token() -> bytes:
    """A header the reader accepts but llama.cpp aborts on (GGML_ASSERT in its vocabulary)."""
    m = tiny_llama()
    m.kvs[9] = kv_strs("tokenizer.ggml.tokens", ["t0", "t1", "t2", "t3", "t4", "t5", "t2", "t7"])
    return m.to_bytes()


def big_metadata(size: int = 33_500_000) -> bytes:
    """A valid model with one enormous metadata value (the library cache must not keep it)."""
    return tiny_llama(extra=[kv_str("general.description", "x" * size),
                             kv_str("tokenizer.chat_template", "{{ 'y' }}" * (size // 9))]).to_bytes()  # fmt: skip


def mutations(seed: int = 1, n_flips: int = 300, n_counts: int = 120) -> Iterator[tuple[str, bytes]]:
    """Truncations at many points, random bit flips, and counts/lengths overwritten with extremes."""
    base = tiny_llama(n_layer=2).to_bytes()
    header_end = base.index(b"\0" * 64)  # the data section is zeros: damage the header, not the data
    rng = random.Random(seed)
    for cut in sorted({*range(0, 96, 3), *rng.sample(range(96, len(base)), 60)}):
        yield f"truncated-{cut}", base[:cut]
    for i in range(n_flips):
        buf = bytearray(base)
        for _ in range(rng.choice((1, 1, 2, 4))):
            pos = rng.randrange(4, header_end)
            buf[pos] ^= 1 << rng.randrange(8)
        yield f"flip-{i}", bytes(buf)
    extremes = [0, 1, 0x7F, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 32, 1 << 62, (1 << 63) - 1, 1 << 63,
                (1 << 64) - 1]  # fmt: skip
    for i in range(n_counts):
        buf = bytearray(base)
        pos = rng.randrange(8, header_end - 8)
        width = rng.choice((4, 8))
        value = rng.choice(extremes) & ((1 << (8 * width)) - 1)
        buf[pos : pos + width] = value.to_bytes(width, "little")
        yield f"overwrite-{i}-{pos}-{value}", bytes(buf)


def write_corpus(folder: Path, *, flips: int = 300, counts: int = 120) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for case in named_cases():
        p = folder / f"{case.name}.gguf"
        p.write_bytes(case.data)
        paths.append(p)
    for name, data in mutations(n_flips=flips, n_counts=counts):
        p = folder / f"{name}.gguf"
        p.write_bytes(data)
        paths.append(p)
    return paths
