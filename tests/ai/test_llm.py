"""The optional LLM writes cited answers from the passages only, or is refused."""

from __future__ import annotations

import pytest

from parcours.ai import llm
from parcours.ai.llm import Generated, LlmUnavailable, Passage

from factories import free_port
from openai_server import Received, chat_app, serve

PASSAGES = [
    Passage(
        n=1,
        text="Vaxelio must be stored between 2 and 8 °C. Do not freeze.",
        location="p. 4",
        title="Vaxelio SmPC",
    ),
    Passage(
        n=2,
        text="In the phase III trial, 1,204 adults received two doses. Seroconversion was 94%.",
        location="p. 9",
        title="Vaxelio SmPC",
    ),
    Passage(
        n=3,
        text="Les effets indésirables les plus fréquents sont la douleur au point d'injection.",
        location="§ Tolérance",
        title="Fiche produit",
    ),
]
QUESTION = "What was the seroconversion rate in the phase III trial?"


@pytest.fixture
def chat(settings_env):
    """A chat-completions server on a free port; the LLM settings point at it."""
    received = Received()
    with serve(chat_app(received)) as base:
        settings_env(
            llm_base_url=f"{base}/v1",
            llm_model="mistral-small-test",
            llm_api_key="",
            llm_timeout_s=1,
        )
        yield received


def test_not_configured_by_default(settings_env):
    settings_env(llm_base_url="")
    assert not llm.configured()
    with pytest.raises(LlmUnavailable, match="PARCOURS_LLM_BASE_URL"):
        llm.answer(QUESTION, PASSAGES, "en")


def test_a_cited_answer_comes_from_the_passages(chat):
    assert llm.configured()

    generated = llm.answer(QUESTION, PASSAGES, "en")

    assert generated == Generated(
        text="In the phase III trial, 1,204 adults received two doses [2].",
        cited=[2],
        model="served-model",
    )
    [body] = chat.bodies
    assert body["model"] == "mistral-small-test"
    assert body["temperature"] == 0
    assert 0 < body["max_tokens"] <= 1000
    system, user = body["messages"]
    assert system["role"] == "system" and user["role"] == "user"
    assert "ONLY from the numbered passages" in system["content"]
    assert "NO_ANSWER" in system["content"]
    assert "English" in system["content"]
    for p in PASSAGES:
        assert f"[{p.n}] {p.title} ({p.location})\n{p.text}" in user["content"]
    assert user["content"].endswith(f"Question: {QUESTION}")
    assert "authorization" not in chat.headers[0]


def test_the_key_is_sent_as_a_bearer_token_and_the_language_is_asked(chat, settings_env):
    settings_env(llm_api_key="sk-local-test")

    generated = llm.answer("Quels sont les effets indésirables fréquents ?", PASSAGES, "fr")

    assert generated is not None and generated.cited == [3]
    assert chat.headers[0]["authorization"] == "Bearer sk-local-test"
    assert "French" in chat.bodies[0]["messages"][0]["content"]


@pytest.mark.parametrize("mode", ["no_answer", "uncited", "cite_unknown"])
def test_a_declined_uncited_or_wrongly_cited_reply_is_no_answer(chat, mode):
    chat.mode = mode

    assert llm.answer(QUESTION, PASSAGES, "en") is None
    assert len(chat.bodies) == 1


def test_no_passages_means_no_answer_without_asking(chat):
    assert llm.answer(QUESTION, [], "en") is None
    assert chat.bodies == []


def test_a_server_error_makes_the_llm_unavailable(chat):
    chat.mode = "error"
    with pytest.raises(LlmUnavailable, match="HTTP 500"):
        llm.answer(QUESTION, PASSAGES, "en")


def test_a_slow_server_times_out(chat):
    chat.mode = "slow"
    chat.delay_s = 3
    with pytest.raises(LlmUnavailable, match="did not answer within 1 s"):
        llm.answer(QUESTION, PASSAGES, "en")


def test_a_garbled_reply_makes_the_llm_unavailable(chat):
    chat.mode = "invalid_json"
    with pytest.raises(LlmUnavailable, match="not a chat completion"):
        llm.answer(QUESTION, PASSAGES, "en")


def test_an_unreachable_server_makes_the_llm_unavailable(settings_env):
    settings_env(llm_base_url=f"http://127.0.0.1:{free_port()}/v1", llm_model="m")
    with pytest.raises(LlmUnavailable, match="cannot be reached"):
        llm.answer(QUESTION, PASSAGES, "en")


def test_a_missing_model_name_is_said_clearly(chat, settings_env):
    settings_env(llm_model="")
    with pytest.raises(LlmUnavailable, match="PARCOURS_LLM_MODEL"):
        llm.answer(QUESTION, PASSAGES, "en")
    assert chat.bodies == []


def test_citations_are_read_in_every_common_form():
    assert llm.cited_numbers("A [2]. B [1, 3]. C [3][4]; D [2]") == [2, 1, 3, 4]
    assert llm.cited_numbers("No citation, 2 and 8 °C.") == []
