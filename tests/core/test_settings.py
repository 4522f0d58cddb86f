"""Settings, paths, secrets and the log file."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import keyring.backends.fail
import pytest

from desktop_app.core import secrets
from desktop_app.core.errors import KeyringUnavailableError, SettingsError
from desktop_app.core.logs import setup_logging
from desktop_app.core.paths import app_paths
from desktop_app.core.settings import SCHEMA_VERSION, Settings, SettingsStore

TOKEN = "hf_abcdefghijklmnopqrstuvwxyz0123"


def test_data_dir_env_moves_everything(tmp_path, monkeypatch):
    monkeypatch.setenv("QUANTDESK_DATA_DIR", str(tmp_path / "portable"))
    p = app_paths().ensure()
    for d in (p.config_dir, p.data_dir, p.cache_dir, p.state_dir, p.log_dir):
        assert d.is_dir() and tmp_path / "portable" in d.parents
    assert p.portable


def test_platform_dirs_without_the_env(monkeypatch):
    monkeypatch.delenv("QUANTDESK_DATA_DIR")
    p = app_paths()
    assert not p.portable and "QuantDesk" in str(p.config_dir)


def test_round_trip_and_defaults(tmp_path):
    store = SettingsStore(tmp_path / "s.json")
    assert store.load() == Settings()
    s = Settings(model_folders=["/models"], theme="dark", include_hf_cache=False)
    store.save(s)
    assert store.load() == s
    assert json.loads((tmp_path / "s.json").read_text())["schema_version"] == SCHEMA_VERSION


def test_unversioned_file_is_migrated_and_bad_values_dropped(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"model_folders": ["/a", 3], "theme": "neon", "include_starter": "yes", "x": 1}))
    s = SettingsStore(path).load()
    assert s == Settings(model_folders=["/a"])


def test_damaged_file_is_kept_aside_and_reported(tmp_path):
    path = tmp_path / "s.json"
    path.write_text("{ half a file")
    store = SettingsStore(path)
    assert store.load() == Settings()
    backups = list(tmp_path.glob("s.json.damaged-*"))
    assert len(backups) == 1 and backups[0].read_text() == "{ half a file"
    assert "damaged" in store.problem and str(backups[0]) in store.problem


def test_save_failure_says_what_to_do(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(SettingsError, match="Could not save settings"):
        SettingsStore(blocker / "s.json").save(Settings())


def test_token_goes_to_the_keyring_and_never_to_files(isolated_env, tmp_path):
    secrets.set_hf_token(TOKEN)
    assert isolated_env.store[(secrets.SERVICE, secrets.TOKEN_USER)] == TOKEN
    assert secrets.get_hf_token() == TOKEN and secrets.token_source() == "keyring"
    SettingsStore().save(Settings())
    for f in Path(app_paths().config_dir).rglob("*"):
        assert TOKEN not in f.read_text()
    secrets.delete_hf_token()
    assert secrets.get_hf_token() is None and secrets.token_source() == ""


def test_token_validation_and_env_fallback(monkeypatch):
    with pytest.raises(ValueError, match="empty"):
        secrets.set_hf_token("  ")
    with pytest.raises(ValueError, match="start with 'hf_'"):
        secrets.set_hf_token("password123")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert secrets.get_hf_token() == TOKEN and secrets.token_source() == "environment"


def test_no_keyring_means_a_clear_refusal():
    keyring.set_keyring(keyring.backends.fail.Keyring())
    assert not secrets.keyring_usable()
    with pytest.raises(KeyringUnavailableError, match="HF_TOKEN"):
        secrets.set_hf_token(TOKEN)
    assert secrets.get_hf_token() is None


def test_log_file_redacts_tokens():
    path = setup_logging()
    logging.getLogger("test").warning("request with %s failed", TOKEN)
    for h in logging.getLogger().handlers:
        h.flush()
    text = Path(path).read_text()
    assert "hf_***" in text and TOKEN not in text
