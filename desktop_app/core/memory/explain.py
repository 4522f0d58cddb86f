"""The prediction in plain words, for people who have never heard of a KV cache."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from desktop_app.core.gguf.quant_names import STANDARD_QUANTS
from desktop_app.core.kinds import Verdict
from desktop_app.core.memory.predictor import (
    RAM_MARGIN_BYTES,
    VRAM_MARGIN_BYTES,
    Machine,
    Prediction,
    Predictor,
    RunSettings,
)
from desktop_app.core.memory.quant_plan import shape_for_quant
from desktop_app.core.memory.shape import ModelShape
from desktop_app.core.units import format_bytes

COMPONENT_WORDS = {
    "weights_bytes": "the model itself (its weights)",
    "kv_cache_bytes": "the conversation memory (KV cache), which grows with the context length",
    "compute_bytes": "working space for the calculations",
    "output_bytes": "the next-word scores",
    "overhead_bytes": "the engine's own overhead",
}


@dataclass(frozen=True)
class QuantOption:
    """Another quant of a model, as llama.cpp's quantizer would make it from this one."""

    quant: str
    file_bytes: int
    shape: ModelShape
    predictor: Predictor


def quant_options(shape: ModelShape, machine: Machine, quants: Sequence[str] = STANDARD_QUANTS) -> list[QuantOption]:
    """The what-if of every quant in ``quants`` (in that order): its planned file and a predictor for
    it on ``machine``. Quants the plan cannot make from this model are left out. The fit panel, the
    CLI's suggestion and Discover's conversion plan all come from here."""
    header = max(shape.file_bytes - sum(t.n_bytes for t in shape.tensors), 0)
    options = []
    for q in quants:
        try:
            planned, plan = shape_for_quant(shape, q, header_bytes=header)
        except (ValueError, KeyError):
            continue
        options.append(QuantOption(q, plan.file_bytes, planned, Predictor(planned, machine)))
    return options


def largest_fitting(options: Sequence[QuantOption], settings: RunSettings, *, below_bytes: int) -> QuantOption | None:
    """The largest option smaller than ``below_bytes`` (the current file) that fits with ``settings``."""
    for option in sorted(options, key=lambda o: -o.file_bytes):
        if option.file_bytes < below_bytes and option.predictor.predict(settings, with_max_ctx=False).verdict != (
            Verdict.TOO_LARGE
        ):
            return option
    return None


def largest_fitting_quant(shape: ModelShape, machine: Machine, settings: RunSettings) -> str | None:
    """The largest standard quant of this model, smaller than it, that fits with ``settings``."""
    best = largest_fitting(quant_options(shape, machine), settings, below_bytes=shape.file_bytes)
    return best.quant if best else None


def ctx_words(n_ctx: int) -> str:
    return f"{n_ctx // 1024}k context" if n_ctx % 1024 == 0 and n_ctx >= 1024 else f"{n_ctx:,}-token context"


def verdict_sentence(p: Prediction, *, gpu_name: str | None = None, smaller_quant: str | None = None) -> str:
    """One sentence: does it fit, where, with how much room, or what would make it fit."""
    at = f"at {ctx_words(p.n_ctx)}"
    gpu = f"your GPU ({gpu_name})" if gpu_name else "your GPU"
    if p.verdict == Verdict.FULL_GPU:
        return f"Fits entirely on {gpu} with {format_bytes(p.vram_spare_bytes)} to spare {at}."
    if p.verdict == Verdict.PARTIAL_GPU:
        return (
            f"Fits with {p.n_gpu_layers} of {p.n_layer + 1} layers on {gpu} and the rest in RAM {at}; "
            f"{format_bytes(p.ram_spare_bytes)} of RAM to spare. Expect lower speed than full GPU."
        )
    if p.verdict == Verdict.CPU_ONLY:
        return (
            f"Runs on the CPU, using {format_bytes(p.ram.needed_bytes)} of your "
            f"{format_bytes(p.ram_free_bytes)} free RAM {at} ({format_bytes(p.ram_spare_bytes)} to spare)."
        )
    short_ram = p.ram.needed_bytes + RAM_MARGIN_BYTES - p.ram_free_bytes
    short_vram = p.vram.needed_bytes + VRAM_MARGIN_BYTES - p.vram_free_bytes if p.n_gpu_layers else 0
    what = f"{format_bytes(short_ram)} more RAM" if short_ram > 0 else f"{format_bytes(short_vram)} more GPU memory"
    tries = []
    if smaller_quant:
        tries.append(smaller_quant)
    if p.max_ctx:
        tries.append(ctx_words(p.max_ctx))
    hint = f": try {' or '.join(tries)}" if tries else ": try a smaller quant or a smaller model"
    return f"Needs {what} than is free {at}{hint}."
