"""One log file in the app's log folder; secrets never reach it."""

from __future__ import annotations

import logging
import logging.handlers
import re

from desktop_app.core.paths import app_paths

_TOKEN_RE = re.compile(r"hf_[A-Za-z0-9]{10,}")


class RedactSecrets(logging.Filter):
    """Blank anything shaped like a Hugging Face token, wherever it was formatted in."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if _TOKEN_RE.search(msg):
            record.msg = _TOKEN_RE.sub("hf_***", msg)
            record.args = None
        return True


def setup_logging(*, verbose: bool = False) -> str:
    """Log to the rotating file (and to stderr when ``verbose``). Returns the file's path."""
    paths = app_paths()
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_quantdesk", False):
            root.removeHandler(h)
            h.close()
    handler = logging.handlers.RotatingFileHandler(paths.log_file, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets())
    handler._quantdesk = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    if verbose:
        err = logging.StreamHandler()
        err.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        err.addFilter(RedactSecrets())
        err._quantdesk = True  # type: ignore[attr-defined]
        root.addHandler(err)
    root.setLevel(logging.INFO)
    return str(paths.log_file)
