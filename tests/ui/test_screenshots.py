"""`quantdesk gui --screenshots DIR` renders every page, with real content, at 1280×800 or more, and
the Convert / Quantize dialog."""

from __future__ import annotations

import os
import subprocess
import sys

from PySide6.QtGui import QImage


def test_screenshots_of_every_page(tmp_path):
    out = tmp_path / "shots"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.run(
        [sys.executable, "-m", "desktop_app", "gui", "--screenshots", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    pages = ["hardware", "discover", "models", "model_details", "chat", "compare", "settings"]
    expected = [*pages, "convert-dialog"]
    assert sorted(p.stem for p in out.glob("*.png")) == sorted(expected)
    for name in expected:
        image = QImage(str(out / f"{name}.png"))
        if name in pages:
            assert image.width() >= 1280 and image.height() >= 800, name
        else:  # the Convert / Quantize dialog, on its own
            assert image.width() >= 620 and image.height() >= 200, name
        # a page with content has many distinct colours; a blank page has a handful
        colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
        assert len(colours) > 20, name
    assert proc.stdout.split() == [str(out / f"{n}.png") for n in expected]
