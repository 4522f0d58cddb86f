"""Memory prediction: what llama.cpp will allocate for a model and settings, before loading it."""

from desktop_app.core.memory.placement import repack_rules
from desktop_app.core.memory.predictor import (
    DeviceMemory,
    Machine,
    Prediction,
    Predictor,
    RunSettings,
)
from desktop_app.core.memory.shape import ModelShape, model_shape

__all__ = [
    "DeviceMemory",
    "Machine",
    "ModelShape",
    "Prediction",
    "Predictor",
    "RunSettings",
    "model_shape",
    "repack_rules",
]
