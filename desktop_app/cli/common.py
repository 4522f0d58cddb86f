"""What the sub-commands share: one JSON object on stdout, and argument types."""

from __future__ import annotations

import argparse
import json
import sys


def emit(obj: dict) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def threads_arg(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("use a number of threads") from None
    if not 1 <= n <= 4096:
        raise argparse.ArgumentTypeError("the number of threads must be between 1 and 4096")
    return n


def gpu_layers_arg(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("use a number of layers or 'auto'") from None
    if n < 0:
        raise argparse.ArgumentTypeError("the number of GPU layers cannot be negative")
    return n
