"""Where QuantDesk keeps things: the platform's standard folders, or all under QUANTDESK_DATA_DIR.

Read the environment at call time (not import time) so tests and portable installs can move
everything by setting one variable.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "QuantDesk"
DATA_DIR_ENV = "QUANTDESK_DATA_DIR"


@dataclass(frozen=True)
class AppPaths:
    config_dir: Path  # settings.json (user choices)
    data_dir: Path  # library data, conversations (SQLite)
    cache_dir: Path  # parsed-header cache, probes; safe to delete
    state_dir: Path  # window geometry, last page
    log_dir: Path
    portable: bool  # True when QUANTDESK_DATA_DIR decided

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.json"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.ini"

    @property
    def log_file(self) -> Path:
        return self.log_dir / "quantdesk.log"

    @property
    def library_cache_file(self) -> Path:
        return self.cache_dir / "library-cache.json"

    def ensure(self) -> AppPaths:
        """Create the folders. Never raises: a folder that cannot be created is left out, and
        :attr:`problems` says which (the app starts anyway and keeps what it can in memory)."""
        problems = []
        for p in (self.config_dir, self.data_dir, self.cache_dir, self.state_dir, self.log_dir):
            try:
                p.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                problems.append(f"{p}: {exc.strerror or exc}")
        object.__setattr__(self, "problems", problems)
        return self

    @property
    def problem(self) -> str:
        """What :meth:`ensure` could not create, in one sentence ("" when all is well)."""
        found = getattr(self, "problems", [])
        if not found:
            return ""
        return (f"QuantDesk cannot create its folders ({'; '.join(found)}). Settings and conversations may not be "
                f"saved; fix the permissions, or set {DATA_DIR_ENV} to a folder you can write.")  # fmt: skip


def app_paths() -> AppPaths:
    """The folders for this run; nothing is created until :meth:`AppPaths.ensure`."""
    root = os.environ.get(DATA_DIR_ENV)
    if root:
        base = Path(root).expanduser().resolve()
        return AppPaths(
            config_dir=base / "config",
            data_dir=base / "data",
            cache_dir=base / "cache",
            state_dir=base / "state",
            log_dir=base / "logs",
            portable=True,
        )
    import platformdirs

    dirs = platformdirs.PlatformDirs(APP_NAME, appauthor=False)
    return AppPaths(
        config_dir=Path(dirs.user_config_dir),
        data_dir=Path(dirs.user_data_dir),
        cache_dir=Path(dirs.user_cache_dir),
        state_dir=Path(dirs.user_state_dir),
        log_dir=Path(dirs.user_log_dir),
        portable=False,
    )


def hf_hub_cache_dir() -> str:
    """The Hugging Face cache folder, resolved from the environment the way huggingface_hub does."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return os.path.expanduser(explicit)
    home = os.environ.get("HF_HOME")
    if not home:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        home = os.path.join(xdg, "huggingface")
    return os.path.join(os.path.expanduser(home), "hub")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` beside ``path`` first, then put it in place: whoever opens ``path`` sees the
    old file or the whole new one, never half of one, and a full disk leaves the old file as it was.

    Raises:
        OSError: the folder is not writable or the disk is full (the partial file is removed).
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):  # the first error is the one to report
            tmp.unlink(missing_ok=True)
        raise
