"""User settings: typed, versioned, migrated, written atomically as JSON in the config folder.

App state (window geometry, last page) is kept apart by the UI; secrets live in the OS keyring
(:mod:`desktop_app.core.secrets`), never here.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from desktop_app.core.paths import app_paths, write_text_atomic

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


MAX_SETTINGS_BYTES = 4 * 1024 * 1024  # a settings file is a few kB; a larger one is not ours
FOLDER_LISTS = ("model_folders", "extra_files", "excluded_paths")


def parse_settings_json(text: str) -> Any:
    """json.loads with no nesting deep enough to exhaust the stack (a settings file is flat).
    Infinity, NaN and numbers that overflow are read as floats, which no setting is: they are then
    values not understood, not a reason to drop the whole file.

    Raises:
        ValueError: the text is not such JSON.
    """
    depth = max_depth = 0
    in_string = escaped = False
    for ch in text:  # a cheap pre-scan: json's recursion would raise RecursionError (or worse) first
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            max_depth = max(max_depth, depth)
            if max_depth > 32:
                raise ValueError("nested deeper than any settings file")
        elif ch in "]}":
            depth -= 1
    return json.loads(text)


def _coerce(data: dict[str, Any]) -> tuple[Settings, list[str]]:
    """Settings from a dict, and what in it was not understood (and how it was kept or dropped).
    Folder lists are never lost: a single string is taken as one folder, an object's strings too."""
    defaults = Settings()
    kwargs: dict[str, Any] = {}
    odd: list[str] = []
    for f in fields(Settings):
        if f.name not in data or f.name == "schema_version":
            continue
        value, default = data[f.name], getattr(defaults, f.name)
        if isinstance(default, list):
            if isinstance(value, str):
                kwargs[f.name] = [value]
                odd.append(f"{f.name} was a single text, kept as one entry")
            elif isinstance(value, dict):
                kwargs[f.name] = [v for v in value.values() if isinstance(v, str)]
                odd.append(f"{f.name} was an object, its texts were kept")
            elif isinstance(value, list):
                kwargs[f.name] = [v for v in value if isinstance(v, str)]
                if len(kwargs[f.name]) != len(value):
                    odd.append(f"{f.name} had {len(value) - len(kwargs[f.name])} entries that are not paths")
            else:
                odd.append(f"{f.name} was not a list")
        elif isinstance(default, bool):
            if isinstance(value, bool):
                kwargs[f.name] = value
            else:
                odd.append(f"{f.name} was not true or false")
        elif isinstance(value, type(default)) and not isinstance(value, bool):
            kwargs[f.name] = value
        else:
            odd.append(f"{f.name} had a value of the wrong kind ({str(value)[:20]})")
    s = Settings(**kwargs)
    if s.theme not in THEMES:
        odd.append(f"theme {s.theme!r} is unknown")
        s.theme = "system"
    if not 0 <= s.threads <= 4096:
        odd.append(f"threads {s.threads} is out of range")
        s.threads = 0
    s.schema_version = SCHEMA_VERSION
    return s, odd


class SettingsStore:
    """Loads and saves :class:`Settings`. A damaged file is kept aside, never overwritten silently."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or app_paths().settings_file
        self.problem = ""  # what went wrong loading, for the UI to show once

    def load(self) -> Settings:
        """The settings, whatever is in the file: never raises. A file that cannot be read as
        settings is kept aside and defaults are used; values not understood are kept where they
        can be (a folder is never lost), the original file is backed up, and ``problem`` says so."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read(MAX_SETTINGS_BYTES + 1)
        except FileNotFoundError:
            return Settings()
        except OSError as exc:
            self.problem = f"Could not read your settings ({exc}); using defaults for now."
            return Settings()
        try:
            if len(raw) > MAX_SETTINGS_BYTES:
                raise ValueError(f"it is over {MAX_SETTINGS_BYTES // (1024 * 1024)} MB")
            # surrogateescape: a byte that is not UTF-8 is kept as it is (a folder's name on Linux may
            # hold one; os functions turn it back into that byte), not a reason to drop the file
            text = raw.decode("utf-8", errors="surrogateescape")
            data = parse_settings_json(text)
            if not isinstance(data, dict):
                raise ValueError("not an object")
            early_odd = []
            if text != raw.decode("utf-8", errors="ignore"):
                early_odd.append("it held bytes that are not UTF-8 text, kept as they are")
            version = data.get("schema_version", 0)
            if not isinstance(version, int) or isinstance(version, bool) or version < 0:
                early_odd.append(f"schema_version {str(version)[:20]} is not a version; read as version "
                                 f"{SCHEMA_VERSION}")  # fmt: skip
                data["schema_version"] = version = SCHEMA_VERSION
            if version > SCHEMA_VERSION:
                self.problem = (
                    "Your settings were written by a newer QuantDesk; they are used as far as "
                    "this version understands them."
                )
            settings, odd = _coerce(_migrate(data))
            odd = early_odd + odd
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            backup = self._keep_aside("damaged", move=True)
            self.problem = (f"Your settings file was damaged ({str(exc)[:200]}). It was kept as {backup} and "
                            "defaults are used.")  # fmt: skip
            log.warning(self.problem)
            return Settings()
        if odd:
            backup = self._keep_aside("not-understood", move=False)
            self.problem = (f"Some of your settings were not understood ({'; '.join(odd)}). The original file is "
                            f"kept as {backup}.")  # fmt: skip
            log.warning(self.problem)
        return settings

    def _keep_aside(self, why: str, *, move: bool) -> Path:
        backup = self.path.with_name(f"{self.path.name}.{why}-{int(time.time())}")
        try:
            if move:
                os.replace(self.path, backup)
            else:
                shutil.copyfile(self.path, backup)
        except OSError:
            return self.path
        return backup

    def save(self, settings: Settings) -> None:
        """Write atomically: a crash mid-write leaves the previous file intact.

        Raises:
            SettingsError: the folder is not writable or the disk is full.
        """
        from desktop_app.core.errors import SettingsError

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(self.path, json.dumps(asdict(settings), indent=2))
        except OSError as exc:
            raise SettingsError(
                f"Could not save settings to {self.path}: {exc.strerror or exc}. "
                "Free some disk space or check the folder's permissions."
            ) from exc
