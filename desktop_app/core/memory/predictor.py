"""Predict what llama.cpp will allocate for a model and run settings, device by device.

The rules follow the pinned llama.cpp (0.3.36's vendored copy), term by term:

* **Placement** — token embeddings always stay on the CPU; with ``n_gpu_layers = N`` the last
  ``N`` of the ``n_layer + 1`` slots go to the GPU, and the output layer is the *first* slot to go
  (``i_gpu_start = max(n_layer + 1 - N, 0)``). A model with tied embeddings gets a copy of the
  token-embedding matrix on the GPU once its output layer is there.
* **CPU repack** — on CPUs with AVX2 (x86) or dot-product/i8mm (ARM), matrix weights of some types
  are copied once more into a ``CPU_REPACK`` buffer when their row count allows
  (``ggml_repack_get_optimal_repack_type``), unless the runtime check chose to run llama.cpp without
  weight repacking (``Machine.repack``), or a GPU is in use (weights left in RAM then go to its
  pinned host buffer, which comes first): then there is no such copy.
* **GPU limits** — a weight of an offloaded layer stays in RAM when the device cannot run its
  matmul with a 512-token batch (its type, or the weight, batch or result larger than the device
  takes: Vulkan's ``maxStorageBufferRange``), as the hardware probe found by asking the device.
* **Op offload** — with a GPU in use and a batch of 32 tokens or more, llama.cpp runs the ops of
  layers left in RAM on the GPU too, copying each weight in for its op: the GPU's compute buffer
  holds the whole batch graph plus the largest such copy, and the host's only the graph's inputs
  (plus the logits when the GPU cannot compute them).
* **KV cache** — ``n_ctx`` padded to 256 cells; per layer ``n_head_kv × head_dim`` elements for K
  and for V in the cache type; sliding-window layers keep ``pad(min(n_ctx, n_swa + n_ubatch), 256)``
  cells only.
* **Output buffer** — one row of ``n_vocab`` float logits per sequence.
* **Compute buffer** — the peak of the graph allocator, modelled as the largest of three phases
  (logits, attention, feed-forward) and calibrated against llama.cpp's own reports across vocab
  sizes, contexts, ubatch sizes and flash attention (``tests/benchmarks``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from desktop_app.core.gguf.ggml_types import GGML_TYPES
from desktop_app.core.gguf.quant_names import KV_TYPE_IDS
from desktop_app.core.kinds import Verdict
from desktop_app.core.memory.shape import ModelShape

MIB = 1024 * 1024
KV_PAD = 256
OP_CHECK_BATCH = 512  # the batch llama.cpp places weights for (weight_buft_supported)
OP_OFFLOAD_MIN_BATCH = 32  # GPU backends run an op on host weights when its batch is this large
RAM_MARGIN_BYTES = 512 * MIB  # the OS and other apps need room too
VRAM_MARGIN_BYTES = 256 * MIB
ENGINE_RAM_OVERHEAD_BYTES = 96 * MIB  # the engine process: Python, llama.cpp code, thread stacks
GPU_CONTEXT_OVERHEAD = {"CUDA": 320 * MIB, "ROCm": 320 * MIB, "Vulkan": 128 * MIB, "Metal": 0, "SYCL": 256 * MIB}

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


@dataclass(frozen=True)
class Machine:
    """What the prediction is held against (from :mod:`desktop_app.core.hardware`)."""

    ram_available_bytes: int
    ram_total_bytes: int
    cpu_features: tuple[str, ...] = ()
    gpu_name: str | None = None
    gpu_backend: str | None = None  # CUDA, Metal, Vulkan, … (None: no usable GPU)
    vram_free_bytes: int = 0
    vram_total_bytes: int = 0
    unified_memory: bool = False
    gpu_offload_supported: bool = False
    repack: bool = True  # the runtime's weight repacking (off: no CPU_REPACK copy is allocated)
    # what the GPU takes, asked of it as llama.cpp asks (hardware probe): larger weights, or weights
    # whose matmul result for a 512-token batch is larger, and unsupported types stay in RAM
    gpu_max_tensor_bytes: int | None = None
    gpu_unsupported_types: tuple[str, ...] = ()

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpu_backend) and self.gpu_offload_supported and self.vram_free_bytes > 0

    @classmethod
    def from_hardware(cls, hw) -> Machine:
        """The first GPU llama.cpp can use (if the build offloads), else CPU only."""
        gpu = hw.gpus[0] if hw.gpus else None
        backend = None
        device = None
        if gpu is not None:
            backend = {"nvidia": "CUDA", "apple": "Metal", "amd": "ROCm"}.get(gpu.vendor, "Vulkan")
            built = [b for b in hw.llama_cpp.backends if b not in ("CPU", "RPC", "BLAS")]
            if built:
                backend = built[0]
            gpus = [d for d in hw.llama_cpp.devices if d.type in ("gpu", "igpu")]
            device = next((d for d in gpus if gpu.name and (gpu.name in d.description or d.description in gpu.name)),
                          gpus[0] if gpus else None)  # fmt: skip
        return cls(
            ram_available_bytes=hw.ram.available_bytes,
            ram_total_bytes=hw.ram.total_bytes,
            cpu_features=tuple(hw.cpu.features),
            gpu_name=gpu.name if gpu else None,
            gpu_backend=backend,
            vram_free_bytes=(gpu.vram_free_bytes or 0) if gpu else 0,
            vram_total_bytes=(gpu.vram_total_bytes or 0) if gpu else 0,
            unified_memory=bool(gpu and gpu.unified_memory),
            gpu_offload_supported=hw.llama_cpp.gpu_offload_supported,
            repack=hw.llama_cpp.runtime.repack if hw.llama_cpp.runtime is not None else True,
            gpu_max_tensor_bytes=device.max_tensor_bytes if device is not None else None,
            gpu_unsupported_types=tuple(device.unsupported_types) if device is not None else (),
        )


@dataclass(frozen=True)
class RunSettings:
    n_ctx: int = 4096
    n_gpu_layers: int | str = "auto"  # a number, or "auto": as many as fit
    kv_type: str = "f16"
    flash_attn: str = "auto"  # on | off | auto
    n_batch: int = 2048
    n_ubatch: int = 512
    mmap: bool = True
    swa_full: bool = False  # llama.cpp's own default is True; our engine (like llama-server) uses False


@dataclass
class DeviceMemory:
    weights_bytes: int = 0
    kv_cache_bytes: int = 0
    compute_bytes: int = 0
    output_bytes: int = 0
    overhead_bytes: int = 0
    repack_bytes: int = 0  # part of weights_bytes: the CPU_REPACK copy
    # With mmap, the file pages of repacked tensors are read once and then only sit in the page
    # cache, which the OS can drop: llama.cpp reports them, but they do not compete for RAM.
    reclaimable_bytes: int = 0

    @property
    def buffers_bytes(self) -> int:
        """What llama.cpp itself reports (everything but the fixed overhead)."""
        return self.weights_bytes + self.kv_cache_bytes + self.compute_bytes + self.output_bytes

    @property
    def total_bytes(self) -> int:
        return self.buffers_bytes + self.overhead_bytes

    @property
    def needed_bytes(self) -> int:
        """What must really be free: the total less page cache the OS can reclaim."""
        return self.total_bytes - self.reclaimable_bytes

    def to_dict(self) -> dict:
        d = asdict(self)
        d["total_bytes"] = self.total_bytes
        d["needed_bytes"] = self.needed_bytes
        return d


@dataclass
class Prediction:
    n_ctx: int  # as llama.cpp will use it (padded to 256)
    n_gpu_layers: int  # resolved (auto → a number)
    n_layer: int
    kv_type: str
    flash_attn: bool
    n_ubatch: int
    ram: DeviceMemory
    vram: DeviceMemory
    verdict: Verdict
    ram_free_bytes: int
    vram_free_bytes: int
    approximate: bool = False
    notes: list[str] = field(default_factory=list)
    max_ctx: int | None = None

    @property
    def ram_spare_bytes(self) -> int:
        return self.ram_free_bytes - self.ram.needed_bytes

    @property
    def vram_spare_bytes(self) -> int:
        return self.vram_free_bytes - self.vram.needed_bytes


class _Model:
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
        output_matmul_ok = True
        # file order, for the mmap'd range: prefix sums, and where each part of the model lies
        self.cum = [0]
        self.input_span = (len(shape.tensors), -1)
        self.layer_span = [(len(shape.tensors), -1)] * n
        self.layer_kept_span = [(len(shape.tensors), -1)] * n
        self.output_span = (len(shape.tensors), -1)
        self.output_kept_span = (len(shape.tensors), -1)

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
        for t in shape.tensors:
            name = GGML_TYPES[t.type_id].name
            rows = t.shape[1] if len(t.shape) >= 2 else 0
            rp = t.n_bytes if (t.is_matmul_weight and name in repack and rows % repack[name] == 0) else 0
            ok = gpu_ok(t)
            if t.name.startswith("token_embd"):
                self.input_bytes += t.n_bytes
                self.input_repack += rp
            elif t.layer is not None and t.layer < n:
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


def _type_bytes(n_elements: int, kv_type: str) -> int:
    t = GGML_TYPES[KV_TYPE_IDS[kv_type]]
    return n_elements // t.block_size * t.type_size


def _pad(n: int, to: int) -> int:
    return -(-n // to) * to


class Predictor:
    """Predicts memory for one model on one machine; cheap to call again with new settings."""

    def __init__(self, shape: ModelShape, machine: Machine) -> None:
        self.shape = shape
        self.machine = machine
        # with a GPU in use, weights left in RAM go to its pinned host buffer type, which llama.cpp
        # lists before the CPU's repack buffers (make_cpu_buft_list): no repacked copy then
        repack = repack_rules(list(machine.cpu_features)) if machine.repack and not machine.has_gpu else {}
        self._m = _Model(shape, repack, self._gpu_ok)

    def _gpu_ok(self, t, *, matmul: bool | None = None) -> bool:
        """Would llama.cpp put this weight on the GPU (llama-model-loader's weight_buft_supported)?"""
        mc = self.machine
        if not (t.is_matmul_weight if matmul is None else matmul):
            return True
        if GGML_TYPES[t.type_id].name in mc.gpu_unsupported_types:
            return False
        limit = mc.gpu_max_tensor_bytes
        if limit is None:
            return True
        cols = t.shape[0] if t.shape else 0
        rows = t.shape[1] if len(t.shape) >= 2 else 1
        # the weight, the 512-token batch it multiplies and the result must each fit the device
        return t.n_bytes <= limit and 4 * cols * OP_CHECK_BATCH <= limit and 4 * rows * OP_CHECK_BATCH <= limit

    # -- one configuration ---------------------------------------------------------------------
    def _compute(self, n_kv: int, t: int, fa: bool, with_output: bool, with_layers: bool, gpu: bool = False,
                 copies: dict[str, int] | None = None) -> int:  # fmt: skip
        """The peak of the graph allocator over the phases of a batch; ``copies`` adds, per phase
        (attn, ffn, output), the weights the GPU copies in from RAM for it (op offload)."""
        s = self.shape
        c = copies or {}
        e = s.n_embd
        h = max(s.n_head) if s.n_head else 1
        qd = h * s.head_dim_k
        ff = s.n_ff * max(s.n_expert_used, 1) + (s.n_expert if s.n_expert else 0)
        mask = (2 if fa else 4) * n_kv * t
        phases = [4 * t * 2 * e]
        if with_output:
            phases.append(4 * t * (s.n_vocab + 2 * e) + c.get("output", 0))
        if with_layers:
            if fa:
                phases.append(mask + 4 * t * (2 * e + 3 * qd) + c.get("attn", 0))
            else:
                phases.append(4 * t * n_kv * h + mask + 2 * t * (4 * e + 7 * qd) + c.get("attn", 0))
            # the GPU backends keep two fewer embedding rows alive through the feed-forward
            phases.append(mask + 4 * t * (3 * ff + (2 if gpu else 4) * e) + c.get("ffn", 0))
        return int(max(phases))

    def _host_inputs(self, n_kv: int, t: int, fa: bool) -> int:
        """The host's part of a batch graph run on the GPU: its inputs (KQ mask: f16 with flash
        attention, f32 without), the token embeddings looked up on the CPU (and their copy), the K and
        V rows of the batch without flash attention, token ids, positions, output ids."""
        s = self.shape
        kv_dim = max(s.n_head_kv, default=1) * s.head_dim_k
        mask = n_kv * t * (2 if fa else 4)
        return mask + 2 * 4 * s.n_embd * t + (0 if fa else 2 * 4 * kv_dim * t) + 5 * 4 * t + 256

    def evaluate(self, settings: RunSettings, n_gpu_layers: int) -> Prediction:
        s, m, mc = self.shape, self._m, self.machine
        n = s.n_layer
        notes: list[str] = []
        gpu = mc.has_gpu
        ngl = max(0, min(n_gpu_layers, n + 1)) if gpu else 0
        i_gpu_start = n + 1 - ngl
        on_gpu = [il >= i_gpu_start for il in range(n + 1)]  # index n is the output layer

        n_ctx = _pad(max(settings.n_ctx, 1), KV_PAD)
        t = max(1, min(settings.n_ubatch, settings.n_batch, n_ctx))
        # "auto" is resolved by probing the devices; the CPU, CUDA, Metal and Vulkan backends all
        # run the fused flash-attention op, so llama.cpp turns it on.
        fa = settings.flash_attn != "off"
        kv_type = settings.kv_type
        if kv_type != "f16" and not fa:
            if settings.flash_attn == "off":
                notes.append("a quantized V cache needs flash attention; llama.cpp will refuse these settings")
            else:
                fa = True
        swa_cells = _pad(min(n_ctx, s.n_swa + t), KV_PAD) if s.n_swa and not settings.swa_full else n_ctx

        ram, vram = DeviceMemory(), DeviceMemory()
        # weights
        ram.weights_bytes += m.input_bytes
        ram.repack_bytes += m.input_repack
        copies = {"attn": 0, "ffn": 0, "output": 0}  # what op offload copies in from RAM, per phase
        for il in range(n):
            if on_gpu[il]:
                vram.weights_bytes += m.layer_bytes[il] - m.layer_kept[il]
                ram.weights_bytes += m.layer_kept[il]
            else:
                ram.weights_bytes += m.layer_bytes[il]
                ram.repack_bytes += m.layer_repack[il]
                for phase, nbytes in m.layer_copies[il].items():
                    copies[phase] = max(copies[phase], nbytes)
        if on_gpu[n]:
            vram.weights_bytes += m.output_bytes - m.output_kept + m.tied_copy_bytes
            ram.weights_bytes += m.output_kept
        else:
            ram.weights_bytes += m.output_bytes
            ram.repack_bytes += m.output_repack
            copies["output"] = m.output_largest
        if settings.mmap:
            ram.weights_bytes += ram.repack_bytes  # CPU_Mapped holds the whole file, CPU_REPACK a second copy
            ram.reclaimable_bytes = ram.repack_bytes
            # the mapped buffer is one file range, from the first weight in RAM to the last: offloaded
            # weights in between (read once, for the upload) count in it, as page cache the OS can drop
            spans = [m.input_span, m.output_span if not on_gpu[n] else m.output_kept_span]
            spans += [m.layer_span[il] if not on_gpu[il] else m.layer_kept_span[il] for il in range(n)]
            first, last = min(a for a, _ in spans), max(b for _, b in spans)
            mapped = m.cum[last + 1] - m.cum[first] if last >= first else 0
            in_ram = ram.weights_bytes - ram.repack_bytes  # the mapped part (CPU_REPACK is the rest)
            if mapped > in_ram:
                ram.weights_bytes += mapped - in_ram
                ram.reclaimable_bytes += mapped - in_ram
        # KV cache, on the device of its layer
        for il in range(n):
            cells = swa_cells if s.swa_layers[il] else n_ctx
            kv = _type_bytes(cells * m.k_elems[il], kv_type) + _type_bytes(cells * m.v_elems[il], kv_type)
            if on_gpu[il]:
                vram.kv_cache_bytes += kv
            else:
                ram.kv_cache_bytes += kv
        # logits of one sequence, in host memory
        ram.output_bytes = 4 * s.n_vocab
        # compute buffers
        n_kv = n_ctx if not all(s.swa_layers) else swa_cells
        any_cpu_layer = not all(on_gpu[:n])
        if gpu and t >= OP_OFFLOAD_MIN_BATCH:
            # llama.cpp plans the batch graph with the GPU in it: ops on weights left in RAM are
            # offloaded too (each weight copied in for its op), so the GPU computes the whole batch,
            # and the host keeps the graph's inputs, plus the logits if the GPU cannot compute them
            logits_on_host = not m.output_matmul_ok
            vram.compute_bytes = self._compute(n_kv, t, fa, not logits_on_host, True, gpu=True, copies=copies)
            ram.compute_bytes = self._host_inputs(n_kv, t, fa)
            if logits_on_host:  # the logits phase: the logits and the normed embeddings they come from
                ram.compute_bytes = max(ram.compute_bytes, 4 * t * (s.n_vocab + 2 * s.n_embd) + 5 * 4 * t + 256)
        else:
            ram.compute_bytes = self._compute(n_kv, t, fa, not on_gpu[n], any_cpu_layer)
            if ngl:
                vram.compute_bytes = self._compute(n_kv, t, fa, on_gpu[n], any(on_gpu[:n]), gpu=True)
        if gpu and (ngl or vram.compute_bytes):
            vram.overhead_bytes = GPU_CONTEXT_OVERHEAD.get(mc.gpu_backend or "", 256 * MIB)
        ram.overhead_bytes = ENGINE_RAM_OVERHEAD_BYTES

        ram_free = mc.ram_available_bytes
        vram_free = mc.vram_free_bytes if gpu else 0
        if mc.unified_memory and gpu:
            # one pool: what the GPU takes is RAM too
            vram_free = min(vram_free, ram_free - ram.needed_bytes)
        fits_ram = ram.needed_bytes + RAM_MARGIN_BYTES <= ram_free
        fits_vram = not vram.needed_bytes or vram.needed_bytes + VRAM_MARGIN_BYTES <= vram_free
        if not (fits_ram and fits_vram):
            verdict = Verdict.TOO_LARGE
        elif ngl == 0:
            verdict = Verdict.CPU_ONLY
        elif ngl >= n + 1:
            verdict = Verdict.FULL_GPU
        else:
            verdict = Verdict.PARTIAL_GPU
        if not settings.mmap:
            notes.append("without mmap the weights are read into RAM up front")
        return Prediction(
            n_ctx=n_ctx,
            n_gpu_layers=ngl,
            n_layer=n,
            kv_type=kv_type,
            flash_attn=fa,
            n_ubatch=t,
            ram=ram,
            vram=vram,
            verdict=verdict,
            ram_free_bytes=ram_free,
            vram_free_bytes=vram_free,
            approximate=s.approximate,
            notes=notes + list(s.approximate_reasons),
        )

    def _auto_layers(self, settings: RunSettings) -> int:
        """The most layers whose VRAM fits (output layer first, as llama.cpp offloads)."""
        if not self.machine.has_gpu:
            return 0
        lo, hi = 0, self.shape.n_layer + 1
        if self.evaluate(settings, hi).verdict != Verdict.TOO_LARGE:
            return hi
        while lo < hi:  # largest n with VRAM fitting; VRAM need grows with n
            mid = (lo + hi + 1) // 2
            p = self.evaluate(settings, mid)
            if p.vram.needed_bytes + VRAM_MARGIN_BYTES <= p.vram_free_bytes:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def predict(self, settings: RunSettings, *, with_max_ctx: bool = True) -> Prediction:
        """The breakdown for ``settings``; ``auto`` GPU layers become the most that fit."""
        if settings.n_gpu_layers == "auto":
            ngl = self._auto_layers(settings)
        else:
            ngl = int(settings.n_gpu_layers)
        p = self.evaluate(settings, ngl)
        if with_max_ctx:
            p.max_ctx = self.max_ctx(settings)
        return p

    def max_ctx(self, settings: RunSettings) -> int | None:
        """The largest context (a multiple of 256, up to the trained length) that fits; None if none."""
        limit = max(self.shape.n_ctx_train, KV_PAD)

        def fits(ctx: int) -> bool:
            trial = RunSettings(**{**asdict(settings), "n_ctx": ctx})
            return self.predict(trial, with_max_ctx=False).verdict != Verdict.TOO_LARGE

        lo, hi = 1, limit // KV_PAD
        if not fits(KV_PAD):
            return None
        if fits(hi * KV_PAD):
            return hi * KV_PAD
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if fits(mid * KV_PAD):
                lo = mid
            else:
                hi = mid - 1
        return lo * KV_PAD
