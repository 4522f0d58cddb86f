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
from desktop_app.core.memory.machine import Machine
from desktop_app.core.memory.placement import LayerSums, repack_rules
from desktop_app.core.memory.shape import ModelShape

MIB = 1024 * 1024
KV_PAD = 256
OP_CHECK_BATCH = 512  # the batch llama.cpp places weights for (weight_buft_supported)
OP_OFFLOAD_MIN_BATCH = 32  # GPU backends run an op on host weights when its batch is this large
RAM_MARGIN_BYTES = 512 * MIB  # the OS and other apps need room too
VRAM_MARGIN_BYTES = 256 * MIB
ENGINE_RAM_OVERHEAD_BYTES = 96 * MIB  # the engine process: Python, llama.cpp code, thread stacks
GPU_CONTEXT_OVERHEAD = {"CUDA": 320 * MIB, "ROCm": 320 * MIB, "Vulkan": 128 * MIB, "Metal": 0, "SYCL": 256 * MIB}


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


@dataclass
class _Batch:
    """The context and batch llama.cpp settles on: cells, tokens per batch, attention kind."""

    n_ctx: int  # KV cells, padded
    n_ubatch: int  # tokens in one physical batch
    flash_attn: bool
    swa_cells: int  # cells of a sliding-window layer
    n_kv: int  # cells the attention of a batch reads


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
        self._m = LayerSums(shape, repack, self._gpu_ok)

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

    def _batch(self, settings: RunSettings, notes: list[str]) -> _Batch:
        """Context cells, batch size and attention as llama.cpp will settle them for ``settings``."""
        shape = self.shape
        n_ctx = _pad(max(settings.n_ctx, 1), KV_PAD)
        n_ubatch = max(1, min(settings.n_ubatch, settings.n_batch, n_ctx))
        # "auto" is resolved by probing the devices; the CPU, CUDA, Metal and Vulkan backends all
        # run the fused flash-attention op, so llama.cpp turns it on.
        flash = settings.flash_attn != "off"
        if settings.kv_type != "f16" and not flash:
            if settings.flash_attn == "off":
                notes.append("a quantized V cache needs flash attention; llama.cpp will refuse these settings")
            else:
                flash = True
        swa = shape.n_swa and not settings.swa_full
        swa_cells = _pad(min(n_ctx, shape.n_swa + n_ubatch), KV_PAD) if swa else n_ctx
        n_kv = n_ctx if not all(shape.swa_layers) else swa_cells
        return _Batch(n_ctx, n_ubatch, flash, swa_cells, n_kv)

    def _place_weights(self, on_gpu: list[bool], mmap: bool, ram: DeviceMemory, vram: DeviceMemory) -> dict[str, int]:
        """Weights on the device of their layer (RAM: the mapped file range and repacked copies).
        Returns what op offload copies in from RAM to the GPU, per phase."""
        m, n = self._m, self.shape.n_layer
        ram.weights_bytes += m.input_bytes
        ram.repack_bytes += m.input_repack
        copies = {"attn": 0, "ffn": 0, "output": 0}
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
        if mmap:
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
        return copies

    def _place_kv(self, on_gpu: list[bool], batch: _Batch, kv_type: str, ram: DeviceMemory, vram: DeviceMemory) -> None:
        """The KV cache, on the device of its layer (sliding-window layers keep fewer cells)."""
        m = self._m
        for il in range(self.shape.n_layer):
            cells = batch.swa_cells if self.shape.swa_layers[il] else batch.n_ctx
            kv = _type_bytes(cells * m.k_elems[il], kv_type) + _type_bytes(cells * m.v_elems[il], kv_type)
            if on_gpu[il]:
                vram.kv_cache_bytes += kv
            else:
                ram.kv_cache_bytes += kv

    def _place_compute(self, on_gpu: list[bool], batch: _Batch, copies: dict[str, int], ram: DeviceMemory,
                       vram: DeviceMemory) -> None:  # fmt: skip
        """The graph allocator's buffers on each device, and the GPU context's own overhead."""
        shape, n, t, fa = self.shape, self.shape.n_layer, batch.n_ubatch, batch.flash_attn
        n_gpu_layers = sum(on_gpu)
        gpu = self.machine.has_gpu
        if gpu and t >= OP_OFFLOAD_MIN_BATCH:
            # llama.cpp plans the batch graph with the GPU in it: ops on weights left in RAM are
            # offloaded too (each weight copied in for its op), so the GPU computes the whole batch,
            # and the host keeps the graph's inputs, plus the logits if the GPU cannot compute them
            logits_on_host = not self._m.output_matmul_ok
            vram.compute_bytes = self._compute(batch.n_kv, t, fa, not logits_on_host, True, gpu=True, copies=copies)
            ram.compute_bytes = self._host_inputs(batch.n_kv, t, fa)
            if logits_on_host:  # the logits phase: the logits and the normed embeddings they come from
                logits = 4 * t * (shape.n_vocab + 2 * shape.n_embd) + 5 * 4 * t + 256
                ram.compute_bytes = max(ram.compute_bytes, logits)
        else:
            ram.compute_bytes = self._compute(batch.n_kv, t, fa, not on_gpu[n], not all(on_gpu[:n]))
            if n_gpu_layers:
                vram.compute_bytes = self._compute(batch.n_kv, t, fa, on_gpu[n], any(on_gpu[:n]), gpu=True)
        if gpu and (n_gpu_layers or vram.compute_bytes):
            vram.overhead_bytes = GPU_CONTEXT_OVERHEAD.get(self.machine.gpu_backend or "", 256 * MIB)
        ram.overhead_bytes = ENGINE_RAM_OVERHEAD_BYTES

    def _verdict(self, n_gpu_layers: int, ram: DeviceMemory, vram: DeviceMemory) -> tuple[Verdict, int, int]:
        """Whether it fits, and where; with the free RAM and VRAM it was judged against."""
        machine = self.machine
        ram_free = machine.ram_available_bytes
        vram_free = machine.vram_free_bytes if machine.has_gpu else 0
        if machine.unified_memory and machine.has_gpu:
            # one pool: what the GPU takes is RAM too
            vram_free = min(vram_free, ram_free - ram.needed_bytes)
        fits_ram = ram.needed_bytes + RAM_MARGIN_BYTES <= ram_free
        fits_vram = not vram.needed_bytes or vram.needed_bytes + VRAM_MARGIN_BYTES <= vram_free
        if not (fits_ram and fits_vram):
            verdict = Verdict.TOO_LARGE
        elif n_gpu_layers == 0:
            verdict = Verdict.CPU_ONLY
        elif n_gpu_layers >= self.shape.n_layer + 1:
            verdict = Verdict.FULL_GPU
        else:
            verdict = Verdict.PARTIAL_GPU
        return verdict, ram_free, vram_free

    def evaluate(self, settings: RunSettings, n_gpu_layers: int) -> Prediction:
        """What llama.cpp will allocate for ``settings`` with ``n_gpu_layers`` offloaded, and whether it fits."""
        n = self.shape.n_layer
        notes: list[str] = []
        ngl = max(0, min(n_gpu_layers, n + 1)) if self.machine.has_gpu else 0
        on_gpu = [il >= n + 1 - ngl for il in range(n + 1)]  # index n is the output layer
        batch = self._batch(settings, notes)
        ram, vram = DeviceMemory(), DeviceMemory()
        copies = self._place_weights(on_gpu, settings.mmap, ram, vram)
        self._place_kv(on_gpu, batch, settings.kv_type, ram, vram)
        ram.output_bytes = 4 * self.shape.n_vocab  # logits of one sequence, in host memory
        self._place_compute(on_gpu, batch, copies, ram, vram)
        verdict, ram_free, vram_free = self._verdict(ngl, ram, vram)
        if not settings.mmap:
            notes.append("without mmap the weights are read into RAM up front")
        return Prediction(
            n_ctx=batch.n_ctx,
            n_gpu_layers=ngl,
            n_layer=n,
            kv_type=settings.kv_type,
            flash_attn=batch.flash_attn,
            n_ubatch=batch.n_ubatch,
            ram=ram,
            vram=vram,
            verdict=verdict,
            ram_free_bytes=ram_free,
            vram_free_bytes=vram_free,
            approximate=self.shape.approximate,
            notes=notes + list(self.shape.approximate_reasons),
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
