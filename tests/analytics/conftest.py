"""Analytics fixtures: the hand-made data set (analytics_world.py) and its figures."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from analytics_world import World, build_world, compute, refresh


@pytest.fixture
def world(session: Session) -> World:
    return build_world(session)


@pytest.fixture
def figures_for(session: Session, world: World, analytics_dir: Path):
    """Figures for some filters over the data set, snapshotted once."""
    refresh(session, analytics_dir)
    return lambda f, **kw: compute(analytics_dir, f, **kw)
