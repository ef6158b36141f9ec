"""The worker keeps the analytics snapshot up to date."""

from __future__ import annotations

import logging

from parcours.analytics import snapshot
from parcours.core import jobs
from parcours.core.db import get_engine
from parcours.core.settings import get_settings

log = logging.getLogger(__name__)


@jobs.periodic(get_settings().analytics_refresh_s)
def refresh_snapshot() -> None:
    """New and changed touchpoints, and changed dimensions, into the Parquet snapshot."""
    with get_engine().connect() as db:
        snapshot.refresh(db)
