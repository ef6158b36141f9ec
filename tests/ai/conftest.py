"""Fixtures shared by the insight tests."""

from __future__ import annotations

import pytest

from parcours.ai import sharepoint
from parcours.core.settings import get_settings

from graph_server import Graph, graph_app
from openai_server import serve


@pytest.fixture
def graph(settings_env):
    """A Graph stand-in on a free local port, with a document library; settings point at it."""
    state = Graph()
    with serve(graph_app(state)) as base:
        settings_env(
            graph_tenant_id=state.tenant_id,
            graph_client_id=state.client_id,
            graph_client_secret=state.client_secret,
            graph_base_url=f"{base}/v1.0",
            graph_login_url=f"{base}/login",
            graph_drives="b!medical-library",
        )
        sharepoint.forget_token(get_settings())
        yield state
        sharepoint.forget_token(get_settings())
