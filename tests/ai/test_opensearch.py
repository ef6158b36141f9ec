"""The OpenSearch adapter behind the lexical interface. No OpenSearch server can run on this
machine, so it talks to a local stand-in of the REST API (tests/ai/opensearch_server.py):
these tests check the index it creates, what it sends and how it reads the answers."""

from __future__ import annotations

import pytest

from parcours.ai import assistant, index, service
from parcours.core.settings import get_settings

from insight_world import build
from openai_server import serve
from opensearch_server import Cluster, opensearch_app


@pytest.fixture
def cluster(settings_env):
    state = Cluster()
    with serve(opensearch_app(state)) as base:
        settings_env(insight_lexical="opensearch", opensearch_url=base, opensearch_index="ins")
        index.forget(get_settings().insight_dir)
        yield state


def test_documents_go_to_opensearch_and_searches_keep_to_what_the_asker_reads(
    session, tmp_path, cluster
):
    world = build(session, tmp_path / "docs")
    mapping = cluster.mappings["ins"]["mappings"]["properties"]
    assert mapping["fr"]["analyzer"] == "french" and mapping["title_en"]["analyzer"] == "english"
    stored = cluster.docs["ins"]
    assert len(stored) == sum(d.chunks for d in world.docs.values())
    study = world.docs["etude-marche-anticoagulants-2026.pdf"]
    assert any(s["doc"] == study.id and "fr" in s for s in stored.values())

    question = "premier frein prescription anticoagulants"
    found = assistant.search(session, world.marketing, question, k=3, mode="bm25")
    assert found and found[0].document.id == study.id
    cluster.requests.clear()
    found = assistant.search(session, world.rep, question, k=3, mode="bm25")
    assert all(f.document.id != study.id for f in found)
    sent = cluster.bodies("POST", "/_search")[0]["query"]["bool"]["filter"]
    allowed = service.scope_for(session, world.rep).acls
    assert {"terms": {"acl": sorted(allowed)}} in sent
    assert study.acl_hash not in allowed

    # hybrid goes through the same filter; deletion reaches the cluster at commit
    record = assistant.ask(session, world.marketing, "Quel est le premier frein ?")
    assert record.passages and record.passages[0]["document_id"] == study.id
    service.remove(session, world.marketing, study)
    session.commit()
    assert {"query": {"terms": {"doc": [study.id]}}} in cluster.bodies("POST", "_delete_by_query")
    assert all(s["doc"] != study.id for s in cluster.docs["ins"].values())


def test_a_cluster_that_refuses_is_said_plainly(session, tmp_path, cluster):
    world = build(session, tmp_path / "docs")
    cluster.down = True
    with pytest.raises(assistant.SearchUnavailable) as err:
        assistant.search(session, world.marketing, "anticoagulants", mode="bm25")
    assert err.value.status == 503 and "503" in err.value.detail
