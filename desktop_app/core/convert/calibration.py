"""The calibration text QuantDesk ships for computing an importance matrix when the user has none.

Original writing of the project (Apache-2.0, like the app): prose, chat, code, lists and several
languages, so the activations it produces resemble a chat model's real use.
"""

from __future__ import annotations

from desktop_app.resources import resource_path

CALIBRATION_FILE = "calibration/calibration.txt"


def default_calibration_text() -> str:
    return resource_path(CALIBRATION_FILE).read_text(encoding="utf-8")
