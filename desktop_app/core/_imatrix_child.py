"""Child process for :func:`desktop_app.core.imatrix.compute_imatrix`: model text_file out n_ctx threads dataset.

What ``llama-imatrix`` does (tools/imatrix/imatrix.cpp, ``collect_imatrix`` and ``compute_imatrix``),
through llama.cpp's graph evaluation callback: for every matrix multiplication by a ``blk.*``
weight with 16 tokens or more, the squares of the input columns are added up per weight (per
expert for ``MUL_MAT_ID``), with a count of the rows. The text is cut into chunks of ``n_ctx``
tokens, each evaluated alone from an empty cache with BOS in its first place. stdout carries
``["progress", [done, total]]`` and ``["error", message]``; llama.cpp's log goes to stderr.
"""

from __future__ import annotations

import ctypes
import json
import sys
from typing import Any

import numpy as np

GGML_MAX_DIMS, GGML_MAX_SRC, GGML_MAX_NAME, GGML_MAX_OP_PARAMS = 4, 10, 64, 64  # ggml.h (pinned)
GGML_OBJECT_SIZE = 32  # sizeof(struct ggml_object): ggml_tensor_overhead() minus this is the tensor's size
GGML_TYPE_F32 = 0
MIN_TOKENS = 16  # llama-imatrix: "why are small batches ignored (<16 tokens)?"


class GGMLTensor(ctypes.Structure):
    """``struct ggml_tensor`` of the pinned ggml.h, field for field (checked against the library's size)."""


GGMLTensor._fields_ = [
    ("type", ctypes.c_int),
    ("buffer", ctypes.c_void_p),
    ("ne", ctypes.c_int64 * GGML_MAX_DIMS),
    ("nb", ctypes.c_size_t * GGML_MAX_DIMS),
    ("op", ctypes.c_int),
    ("op_params", ctypes.c_int32 * (GGML_MAX_OP_PARAMS // 4)),
    ("flags", ctypes.c_int32),
    ("src", ctypes.POINTER(GGMLTensor) * GGML_MAX_SRC),
    ("view_src", ctypes.POINTER(GGMLTensor)),
    ("view_offs", ctypes.c_size_t),
    ("data", ctypes.c_void_p),
    ("name", ctypes.c_char * GGML_MAX_NAME),
    ("extra", ctypes.c_void_p),
    ("padding", ctypes.c_char * 8),
]


class Failed(Exception):
    """A reason to stop, said to the parent as ``["error", message]``."""


def ggml_functions() -> tuple[Any, int, int]:
    """ggml through libllama's handle, and the op numbers of MUL_MAT and MUL_MAT_ID, looked up by name."""
    from desktop_app.core.runtime.backends import ggml_library
    from desktop_app.core.runtime.llama_setup import lib_dir

    folder = lib_dir()
    if folder is None:
        raise Failed("llama-cpp-python's libraries were not found.")
    ggml = ggml_library(folder)
    ggml.ggml_op_name.restype, ggml.ggml_op_name.argtypes = ctypes.c_char_p, [ctypes.c_int]
    ggml.ggml_tensor_overhead.restype = ctypes.c_size_t
    ggml.ggml_nbytes.restype, ggml.ggml_nbytes.argtypes = ctypes.c_size_t, [ctypes.c_void_p]
    ggml.ggml_backend_buffer_is_host.restype = ctypes.c_bool
    ggml.ggml_backend_buffer_is_host.argtypes = [ctypes.c_void_p]
    ggml.ggml_backend_tensor_get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
    if ggml.ggml_tensor_overhead() - GGML_OBJECT_SIZE != ctypes.sizeof(GGMLTensor):
        raise Failed("This llama.cpp's tensors are laid out differently from the ones QuantDesk knows.")
    ops = {ggml.ggml_op_name(i): i for i in range(64)}  # GGML_OP_COUNT is past 64: all in bounds
    if b"MUL_MAT" not in ops or b"MUL_MAT_ID" not in ops:
        raise Failed("This llama.cpp has no matrix multiplication op by the expected name.")
    return ggml, ops[b"MUL_MAT"], ops[b"MUL_MAT_ID"]


def weight_name(t: GGMLTensor) -> str:
    """llama-imatrix's filter_tensor_name: "CUDA0#blk.0.attn_k.weight#0" → "blk.0.attn_k.weight"."""
    name = t.name.decode("utf-8", "replace")
    if "#" in name:
        name = name.split("#", 2)[1]
    return name


class Collector:
    """The sums of squares and counts, per weight, that llama-imatrix's IMatrixCollector keeps."""

    def __init__(self, ggml: Any, mul_mat: int, mul_mat_id: int) -> None:
        self.ggml, self.mul_mat, self.mul_mat_id = ggml, mul_mat, mul_mat_id
        self.sums: dict[str, np.ndarray] = {}  # (n_mat, n_cols) float64
        self.counts: dict[str, np.ndarray] = {}  # (n_mat,) int64
        self.error = ""

    def callback(self, address: int, ask: bool, user_data: Any) -> bool:
        """ggml_backend_sched_eval_callback: asked first whether a node is wanted, then given it."""
        try:
            t = GGMLTensor.from_address(address)
            return self.wanted(t) if ask else self.collect(t)
        except Exception as exc:  # an exception must not cross into C; stop the graph instead
            self.error = self.error or f"collecting the importance matrix failed: {exc}"
            return False

    def wanted(self, t: GGMLTensor) -> bool:
        if t.op == self.mul_mat_id:
            return True
        if t.op != self.mul_mat:
            return False
        src1 = t.src[1].contents
        return (
            src1.ne[1] >= MIN_TOKENS
            and src1.type == GGML_TYPE_F32
            and weight_name(t.src[0].contents).startswith("blk.")
        )

    def collect(self, t: GGMLTensor) -> bool:
        src0, src1 = t.src[0].contents, t.src[1].contents
        if src1.nb[0] != 4:
            raise Failed(f"unexpected input layout for {weight_name(src0)}")
        x = self.array(src1, np.float32, (src1.ne[3], src1.ne[2], src1.ne[1], src1.ne[0]),
                       (src1.nb[3], src1.nb[2], src1.nb[1], 4))  # fmt: skip
        if t.op == self.mul_mat_id:
            self.add_experts(t, src0, x)
        else:
            self.add_dense(src0, x)
        return True

    def array(self, t: GGMLTensor, dtype: Any, shape: tuple[int, ...], strides: tuple[int, ...]) -> np.ndarray:
        """The tensor's data as numpy sees it: in place in host memory, else copied out of the device."""
        nbytes = self.ggml.ggml_nbytes(ctypes.addressof(t))
        if t.buffer and self.ggml.ggml_backend_buffer_is_host(t.buffer):
            buf: Any = (ctypes.c_char * nbytes).from_address(t.data)
        else:
            buf = ctypes.create_string_buffer(nbytes)
            self.ggml.ggml_backend_tensor_get(ctypes.addressof(t), buf, 0, nbytes)
        return np.ndarray(shape, dtype=dtype, buffer=buf, strides=strides)

    def entry(self, name: str, n_mat: int, n_cols: int, n_counts: int) -> tuple[np.ndarray, np.ndarray]:
        sums = self.sums.setdefault(name, np.zeros((n_mat, n_cols), np.float64))
        counts = self.counts.setdefault(name, np.zeros(n_counts, np.int64))
        if sums.shape != (n_mat, n_cols) or counts.shape != (n_counts,):
            raise Failed(f"inconsistent sizes for {name}")
        return sums, counts

    def add_dense(self, src0: GGMLTensor, x: np.ndarray) -> None:
        name = weight_name(src0)
        n_mat = src0.ne[2] * src0.ne[3]
        sums, counts = self.entry(name, n_mat, x.shape[3], 1)
        for i3 in range(x.shape[0]):
            for i2 in range(x.shape[1]):
                rows = x[i3, i2].astype(np.float64)
                sums[(i3 % src0.ne[3]) * src0.ne[2] + (i2 % src0.ne[2])] += np.einsum("ij,ij->j", rows, rows)
        counts += (x.shape[0] * x.shape[1] * x.shape[2]) // n_mat
        if not np.isfinite(sums).all():
            raise Failed(f"non-finite values in {name}")

    def add_experts(self, t: GGMLTensor, src0: GGMLTensor, x: np.ndarray) -> None:
        ids_t = t.src[2].contents
        n_as, n_ids, n_tokens, ne11 = src0.ne[2], ids_t.ne[0], x.shape[1], x.shape[2]
        if x.shape[0] != 1 or ids_t.ne[1] != n_tokens:
            raise Failed(f"unexpected expert layout for {weight_name(src0)}")
        ids = self.array(ids_t, np.int32, (n_tokens, n_ids), (ids_t.nb[1], ids_t.nb[0]))
        if ids.size and (ids.min() < 0 or ids.max() >= n_as):
            raise Failed(f"expert ids out of range for {weight_name(src0)}")
        sums, counts = self.entry(weight_name(src0), n_as, x.shape[3], n_as)
        for idx in range(n_ids):
            rows = x[0, :, idx % ne11, :].astype(np.float64)
            np.add.at(sums, ids[:, idx], rows * rows)
            counts += np.bincount(ids[:, idx], minlength=n_as)
        if not np.isfinite(sums).all():
            raise Failed(f"non-finite values in {weight_name(src0)}")


def say(kind: str, payload: Any) -> None:
    print(json.dumps([kind, payload]), flush=True)


def load(path: str, n_ctx: int, threads: int, callback: Any) -> tuple[Any, Any]:
    import llama_cpp

    from desktop_app.core._quantize_child import log_to_stderr
    from desktop_app.core.runtime.llama_setup import llama_threads, load_failure_reason, setup_llama

    config = setup_llama()
    errors: list[str] = []
    log_to_stderr(errors)
    mparams = llama_cpp.llama_model_default_params()
    mparams.n_gpu_layers = 0  # the activations are read on the host
    model = llama_cpp.llama_model_load_from_file(path.encode(), mparams)
    if not model:
        raise Failed(f"llama.cpp refused the model: {load_failure_reason(errors) or 'no reason given'}")
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = cparams.n_batch = cparams.n_ubatch = n_ctx
    cparams.n_seq_max = 1
    n = llama_threads(config, threads or None)
    cparams.n_threads, cparams.n_threads_batch = n["n_threads"], n["n_threads_batch"]
    cparams.cb_eval, cparams.cb_eval_user_data = callback, None
    cparams.op_offload, cparams.no_perf = False, True
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    if not ctx:
        raise Failed(f"llama.cpp could not make a context of {n_ctx} tokens: {load_failure_reason(errors)}")
    return model, ctx


def tokenize(model: Any, ctx: Any, text: bytes, n_ctx: int) -> tuple[list[int], int | None]:
    """common_tokenize(text, add_special=true, parse_special=false), and the BOS each chunk starts with."""
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(model)
    if llama_cpp.llama_pooling_type(ctx) != llama_cpp.LLAMA_POOLING_TYPE_LAST and llama_cpp.llama_vocab_get_add_eos(
        vocab
    ):
        raise Failed("This model ends every text with an end token; llama-imatrix refuses such models too.")
    room = len(text) + 2
    tokens = (llama_cpp.llama_token * room)()
    n = llama_cpp.llama_tokenize(vocab, text, len(text), tokens, room, True, False)
    if n < 0:
        raise Failed("The text could not be tokenized.")
    if n < 2 * n_ctx:
        raise Failed(f"The text is {n:,} tokens; chunks of {n_ctx} need at least {2 * n_ctx:,}.")
    bos = llama_cpp.llama_vocab_bos(vocab) if llama_cpp.llama_vocab_get_add_bos(vocab) else None
    return list(tokens[:n]), bos


def evaluate(ctx: Any, tokens: list[int], bos: int | None, n_ctx: int, collector: Collector) -> int:
    """Each chunk alone from an empty cache, every token with its output (so the last layer runs for
    all of them, as in llama-imatrix). Returns the number of chunks."""
    import llama_cpp

    n_chunk = len(tokens) // n_ctx
    batch = llama_cpp.llama_batch_init(n_ctx, 0, 1)
    try:
        for c in range(n_chunk):
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
            chunk = tokens[c * n_ctx : (c + 1) * n_ctx]
            if bos is not None:
                chunk[0] = bos
            for i, tok in enumerate(chunk):
                batch.token[i], batch.pos[i], batch.n_seq_id[i], batch.logits[i] = tok, i, 1, True
                batch.seq_id[i][0] = 0
            batch.n_tokens = n_ctx
            rc = llama_cpp.llama_decode(ctx, batch)
            if collector.error:
                raise Failed(collector.error)
            if rc != 0:
                raise Failed(f"llama.cpp could not evaluate chunk {c + 1} (code {rc}).")
            say("progress", [c + 1, n_chunk])
    finally:
        llama_cpp.llama_batch_free(batch)
    return n_chunk


def main() -> int:
    model_path, text_path, out, n_ctx_arg, threads, dataset = sys.argv[1:7]
    n_ctx = int(n_ctx_arg)
    try:
        import llama_cpp

        from desktop_app.core.imatrix import write_imatrix_gguf

        ggml, mul_mat, mul_mat_id = ggml_functions()
        collector = Collector(ggml, mul_mat, mul_mat_id)
        callback = llama_cpp.ggml_backend_sched_eval_callback(collector.callback)
        model, ctx = load(model_path, n_ctx, int(threads), callback)
        with open(text_path, "rb") as f:
            tokens, bos = tokenize(model, ctx, f.read(), n_ctx)
        evaluate(ctx, tokens, bos, n_ctx, collector)
        if not collector.sums:
            raise Failed("No matrix multiplication was seen: this model cannot get an importance matrix.")
        chunk_count = max(int(c.max()) for c in collector.counts.values()) // n_ctx
        sums = {k: v.astype(np.float32) for k, v in collector.sums.items()}
        counts = {k: v.astype(np.float32) for k, v in collector.counts.items()}
        write_imatrix_gguf(out, sums, counts, datasets=[dataset] if dataset else [], chunk_count=chunk_count,
                           chunk_size=n_ctx)  # fmt: skip
    except Failed as exc:
        say("error", str(exc))
        return 2
    except OSError as exc:
        say("error", f"Writing the importance matrix failed: {exc.strerror or exc}.")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
