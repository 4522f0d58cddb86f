"""The prediction in plain words, for people who have never heard of a KV cache."""

from __future__ import annotations

from desktop_app.core.memory.predictor import RAM_MARGIN_BYTES, VRAM_MARGIN_BYTES, Prediction
from desktop_app.core.units import format_bytes

COMPONENT_WORDS = {
    "weights_bytes": "the model itself (its weights)",
    "kv_cache_bytes": "the conversation memory (KV cache), which grows with the context length",
    "compute_bytes": "working space for the calculations",
    "output_bytes": "the next-word scores",
    "overhead_bytes": "the engine's own overhead",
}


SUGGESTED_QUANTS = ("Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M", "Q4_K_S", "Q3_K_M", "Q2_K")


def largest_fitting_quant(shape, machine, settings) -> str | None:
    """The largest standard quant of this model, smaller than it, that fits with ``settings``."""
    from desktop_app.core.memory.predictor import Predictor
    from desktop_app.core.memory.quant_plan import shape_for_quant

    header = max(shape.file_bytes - sum(t.n_bytes for t in shape.tensors), 0)
    for q in SUGGESTED_QUANTS:
        planned, _plan = shape_for_quant(shape, q, header_bytes=header)
        if planned.file_bytes >= shape.file_bytes:
            continue
        if Predictor(planned, machine).predict(settings, with_max_ctx=False).verdict != "too_large":
            return q
    return None


def ctx_words(n_ctx: int) -> str:
    return f"{n_ctx // 1024}k context" if n_ctx % 1024 == 0 and n_ctx >= 1024 else f"{n_ctx:,}-token context"


def verdict_sentence(p: Prediction, *, gpu_name: str | None = None, smaller_quant: str | None = None) -> str:
    """One sentence: does it fit, where, with how much room, or what would make it fit."""
    at = f"at {ctx_words(p.n_ctx)}"
    gpu = f"your GPU ({gpu_name})" if gpu_name else "your GPU"
    if p.verdict == "full_gpu":
        return f"Fits entirely on {gpu} with {format_bytes(p.vram_spare_bytes)} to spare {at}."
    if p.verdict == "partial_gpu":
        return (
            f"Fits with {p.n_gpu_layers} of {p.n_layer + 1} layers on {gpu} and the rest in RAM {at}; "
            f"{format_bytes(p.ram_spare_bytes)} of RAM to spare. Expect lower speed than full GPU."
        )
    if p.verdict == "cpu_only":
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
