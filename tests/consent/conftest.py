"""Consent fixtures: workers commit to a database file of their own (the SMTP server is the
suite's, in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture
def file_db(committed_db) -> str:
    """The configured database is a fresh migrated SQLite file; workers commit there."""
    return committed_db
