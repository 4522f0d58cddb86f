"""GGUF files: header reading (never tensor data) and the model summary built from it."""

from desktop_app.core.gguf.model_info import ModelInfo, TensorTypeShare, model_info_from_headers
from desktop_app.core.gguf.reader import (
    GGUFArray,
    GGUFHeader,
    NeedMoreBytes,
    TensorInfo,
    parse_gguf_header,
    read_gguf_header,
    read_model_headers,
)
from desktop_app.core.gguf.split import SPLIT_RE

__all__ = [
    "SPLIT_RE",
    "GGUFArray",
    "GGUFHeader",
    "ModelInfo",
    "NeedMoreBytes",
    "TensorInfo",
    "TensorTypeShare",
    "model_info_from_headers",
    "parse_gguf_header",
    "read_gguf_header",
    "read_model_headers",
]
