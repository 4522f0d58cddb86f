"""Where each weight of a model lands and what it weighs: the per-layer sums the predictor adds up.

``repack_rules``: which weight types llama.cpp's CPU backend copies into a ``CPU_REPACK`` buffer
on a CPU with given features (``ggml_repack_get_optimal_repack_type``). :class:`LayerSums`: a
ModelShape's bytes per part (input, each layer, output), the parts that stay in RAM when their
layer is offloaded, and the file ranges the memory-mapped buffer covers.
"""

from __future__ import annotations

from desktop_app.core.gguf.ggml_types import GGML_TYPES
from desktop_app.core.memory.shape import ModelShape

# (type name, rows-multiple) that ggml's CPU backend repacks, by CPU feature set
_REPACK_X86_AVX2 = {"Q4_0": 8, "Q4_K": 8, "IQ4_NL": 8, "MXFP4": 8}
_REPACK_X86_AVX512 = {**_REPACK_X86_AVX2, "Q2_K": 8}
_REPACK_ARM_I8MM = {"Q4_0": 4, "Q4_K": 8, "Q5_K": 8, "Q6_K": 8, "Q8_0": 4, "IQ4_NL": 4, "MXFP4": 4, "Q1_0": 4}
_REPACK_ARM_DOTPROD = {"Q4_0": 4, "Q4_K": 8, "Q5_K": 8, "Q6_K": 8, "Q8_0": 4, "IQ4_NL": 4, "MXFP4": 4, "Q1_0": 4}


def repack_rules(cpu_features: list[str]) -> dict[str, int]:
    """Which weight types llama.cpp's CPU backend repacks on a CPU with these features."""
    f = set(cpu_features)
    if "AVX512" in f and "AVX2" in f:
        return _REPACK_X86_AVX512
    if "AVX2" in f:
        return _REPACK_X86_AVX2
    if "NEON" in f and "MATMUL_INT8" in f:
        return _REPACK_ARM_I8MM
    if "NEON" in f and "DOTPROD" in f:
        return _REPACK_ARM_DOTPROD
    return {}


class LayerSums:
    """Per-layer sums of a ModelShape, precomputed for fast repeated predictions.

    ``gpu_ok(tensor)`` says whether llama.cpp would put a weight of an offloaded layer on the GPU;
    the ones it would not (too large for the device, a type it cannot multiply) stay in RAM.
    """

    def __init__(self, shape: ModelShape, repack: dict[str, int], gpu_ok) -> None:
        self.shape = shape
        n = shape.n_layer
        self.layer_bytes = [0] * n
        self.layer_repack = [0] * n
        self.layer_kept = [0] * n  # bytes that stay in RAM even when the layer is offloaded
        # per layer: the matmul weights the GPU could take copies of, by phase (attention, feed-forward)
        self.layer_copyable: list[dict[str, list[int]]] = [{"attn": [], "ffn": []} for _ in range(n)]
        self.input_bytes = 0  # token embeddings (always CPU)
        self.input_repack = 0
        self.output_bytes = 0  # output layer: output norm + output matrix (+ anything outside blocks)
        self.output_repack = 0
        self.output_kept = 0
        self.output_largest = 0
        self._find_spans(shape, gpu_ok)
        output_matmul_ok = self._sum_layers(shape, repack, gpu_ok)
        emb = shape.token_embd
        tied = shape.tied_embeddings and emb is not None
        # a model with tied embeddings multiplies by token_embd for its logits: llama.cpp copies it to
        # the GPU with the output layer, if the GPU can take it
        self.tied_copy_bytes = emb.n_bytes if (emb is not None and tied and gpu_ok(emb, matmul=True)) else 0
        if tied:
            output_matmul_ok = self.tied_copy_bytes > 0
            self.output_largest = max(self.output_largest, self.tied_copy_bytes)
        self.output_matmul_ok = output_matmul_ok  # the logits can be computed on the GPU
        # KV elements per cell, per layer
        # the allocator keeps about two copied weights of a phase alive at once (measured on Vulkan)
        self.layer_copies = [{k: sum(sorted(v)[-2:]) for k, v in c.items()} for c in self.layer_copyable]
        self.k_elems = [shape.n_head_kv[i] * shape.head_dim_k for i in range(n)]
        self.v_elems = [shape.n_head_kv[i] * shape.head_dim_v for i in range(n)]

    def _find_spans(self, shape: ModelShape, gpu_ok) -> None:
        """File order, for the mmap'd range: prefix sums, and where each part of the model lies."""
        n = shape.n_layer
        none = (len(shape.tensors), -1)
        self.cum = [0]
        self.input_span = none
        self.layer_span = [none] * n
        self.layer_kept_span = [none] * n
        self.output_span = none
        self.output_kept_span = none

        def grow(span: tuple[int, int], i: int) -> tuple[int, int]:
            return min(span[0], i), max(span[1], i)

        for i, t in enumerate(shape.tensors):
            self.cum.append(self.cum[-1] + t.n_bytes)
            kept = not gpu_ok(t)
            if t.name.startswith("token_embd"):
                self.input_span = grow(self.input_span, i)
            elif t.layer is not None and t.layer < n:
                self.layer_span[t.layer] = grow(self.layer_span[t.layer], i)
                if kept:
                    self.layer_kept_span[t.layer] = grow(self.layer_kept_span[t.layer], i)
            else:
                self.output_span = grow(self.output_span, i)
                if kept:
                    self.output_kept_span = grow(self.output_kept_span, i)

    def _sum_layers(self, shape: ModelShape, repack: dict[str, int], gpu_ok) -> bool:
        """Bytes per part (input, each layer, output), repacked and kept in RAM; returns whether
        every output matmul weight could go to the GPU."""
        output_matmul_ok = True
        for t in shape.tensors:
            name = GGML_TYPES[t.type_id].name
            rows = t.shape[1] if len(t.shape) >= 2 else 0
            rp = t.n_bytes if (t.is_matmul_weight and name in repack and rows % repack[name] == 0) else 0
            ok = gpu_ok(t)
            if t.name.startswith("token_embd"):
                self.input_bytes += t.n_bytes
                self.input_repack += rp
            elif t.layer is not None and t.layer < shape.n_layer:
                self.layer_bytes[t.layer] += t.n_bytes
                self.layer_repack[t.layer] += rp
                self.layer_kept[t.layer] += 0 if ok else t.n_bytes
                if t.is_matmul_weight and ok:
                    phase = "ffn" if ".ffn_" in t.name else "attn"
                    self.layer_copyable[t.layer][phase].append(t.n_bytes)
            else:
                self.output_bytes += t.n_bytes
                self.output_repack += rp
                self.output_kept += 0 if ok else t.n_bytes
                if t.is_matmul_weight:
                    output_matmul_ok = output_matmul_ok and ok
                    if ok:
                        self.output_largest = max(self.output_largest, t.n_bytes)
        return output_matmul_ok
