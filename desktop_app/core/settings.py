"""User settings: typed, versioned, migrated, written atomically as JSON in the config folder.

App state (window geometry, last page) is kept apart by the UI; secrets live in the OS keyring
(:mod:`desktop_app.core.secrets`), never here.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from desktop_app.core.paths import app_paths

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
THEMES = ("system", "light", "dark")


@dataclass
class Settings:
    schema_version: int = SCHEMA_VERSION
    model_folders: list[str] = field(default_factory=list)
    extra_files: list[str] = field(default_factory=list)  # single files opened or dropped
    excluded_paths: list[str] = field(default_factory=list)  # removed from the library by the user
    include_hf_cache: bool = True
    include_starter: bool = True
    theme: str = "system"
    threads: int = 0  # llama.cpp's threads; 0: llama.cpp's own default (one per physical/performance core)

    def add_folder(self, folder: str) -> bool:
        folder = os.path.abspath(folder)
        if folder in self.excluded_paths:
            self.excluded_paths.remove(folder)
        if folder in self.model_folders:
            return False
        self.model_folders.append(folder)
        return True

    def add_file(self, path: str) -> bool:
        path = os.path.abspath(path)
        if path in self.excluded_paths:
            self.excluded_paths.remove(path)
        if path in self.extra_files:
            return False
        self.extra_files.append(path)
        return True

    def remove_model(self, paths: list[str]) -> None:
        """Take a model (all its shards) out of the library without deleting any file."""
        for p in paths:
            p = os.path.abspath(p)
            if p in self.extra_files:
                self.extra_files.remove(p)
            if p not in self.excluded_paths:  # it may also lie in a library folder
                self.excluded_paths.append(p)


# Each entry turns a dict of schema version N into version N + 1.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    0: lambda d: {**d, "schema_version": 1},  # files written before versioning
}


def _migrate(data: dict[str, Any]) -> dict[str, Any]:
    version = int(data.get("schema_version", 0))
    while version < SCHEMA_VERSION:
        data = MIGRATIONS[version](data)
        version = int(data["schema_version"])
    return data


def _coerce(data: dict[str, Any]) -> Settings:
    defaults = Settings()
    kwargs: dict[str, Any] = {}
    for f in fields(Settings):
        if f.name not in data:
            continue
        value, default = data[f.name], getattr(defaults, f.name)
        if isinstance(default, list):
            if isinstance(value, list):
                kwargs[f.name] = [str(v) for v in value if isinstance(v, str)]
        elif isinstance(default, bool):
            if isinstance(value, bool):
                kwargs[f.name] = value
        elif isinstance(value, type(default)) and not isinstance(value, bool):
            kwargs[f.name] = value
    s = Settings(**kwargs)
    if s.theme not in THEMES:
        s.theme = "system"
    if not 0 <= s.threads <= 4096:
        s.threads = 0
    s.schema_version = SCHEMA_VERSION
    return s


class SettingsStore:
    """Loads and saves :class:`Settings`. A damaged file is kept aside, never overwritten silently."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or app_paths().settings_file
        self.problem = ""  # what went wrong loading, for the UI to show once

    def load(self) -> Settings:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return Settings()
        except OSError as exc:
            self.problem = f"Could not read your settings ({exc}); using defaults for now."
            return Settings()
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            if int(data.get("schema_version", 0)) > SCHEMA_VERSION:
                self.problem = (
                    "Your settings were written by a newer QuantDesk; they are used as far as "
                    "this version understands them."
                )
            return _coerce(_migrate(data))
        except (ValueError, TypeError, KeyError) as exc:
            backup = self.path.with_name(f"{self.path.name}.damaged-{int(time.time())}")
            try:
                os.replace(self.path, backup)
            except OSError:
                backup = self.path
            self.problem = f"Your settings file was damaged ({exc}). It was kept as {backup} and defaults are used."
            log.warning(self.problem)
            return Settings()

    def save(self, settings: Settings) -> None:
        """Write atomically: a crash mid-write leaves the previous file intact.

        Raises:
            SettingsError: the folder is not writable or the disk is full.
        """
        from desktop_app.core.errors import SettingsError

        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(asdict(settings), indent=2), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            raise SettingsError(
                f"Could not save settings to {self.path}: {exc.strerror or exc}. "
                "Free some disk space or check the folder's permissions."
            ) from exc
