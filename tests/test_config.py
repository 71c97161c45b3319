from __future__ import annotations

import pytest

from matplat.config import DEFAULT_DATABASE_URL, Settings, load_settings


def test_defaults_when_nothing_is_set() -> None:
    s = load_settings({})
    assert s == Settings(DEFAULT_DATABASE_URL, None, "auto")
    assert s.database_url == "sqlite:///platform.db"


def test_environment_then_options() -> None:
    env = {"PLATFORM_DATABASE_URL": "postgresql+psycopg://u@h/db",
           "PLATFORM_BROKER_URL": "redis://localhost:6379/0", "PLATFORM_DEVICE": "cpu"}
    s = load_settings(env)
    assert (s.database_url, s.broker_url, s.device) == (
        "postgresql+psycopg://u@h/db", "redis://localhost:6379/0", "cpu")
    s2 = load_settings(env, database_url="sqlite:///x.db", device=None)
    assert s2.database_url == "sqlite:///x.db" and s2.device == "cpu"


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        load_settings({}).device = "cuda"  # type: ignore[misc]


def test_import_reads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    import matplat.config as config

    monkeypatch.setenv("PLATFORM_DATABASE_URL", "sqlite:///late.db")
    importlib.reload(config)
    assert config.load_settings().database_url == "sqlite:///late.db"
