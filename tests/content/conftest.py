"""Content fixtures: a temporary library folder, an MLR team, and versions built by the services."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from parcours.core.settings import get_settings

from content_factories import MLR, build_mlr


@pytest.fixture
def settings_env() -> Iterator[Callable[..., None]]:
    """Set PARCOURS_* variables for one test: settings_env(content_max_bytes=1000).

    Settings are read again at once, and again once the variables are restored.
    """
    saved: dict[str, str | None] = {}

    def set_env(**values) -> None:
        for key, value in values.items():
            name = f"PARCOURS_{key.upper()}"
            saved.setdefault(name, os.environ.get(name))
            os.environ[name] = str(value)
        get_settings.cache_clear()

    yield set_env
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def content_dir(tmp_path: Path, settings_env) -> Path:
    """A library folder of its own for each test (autouse: no test writes under var/)."""
    folder = tmp_path / "content"
    folder.mkdir()
    settings_env(content_dir=folder)
    return folder


@pytest.fixture
def mlr(session: Session) -> MLR:
    return build_mlr(session)
