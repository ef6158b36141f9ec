"""The assistants: search within what the asker may read, answers with numbered citations."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.ai import embed, retrieval, service, text
from parcours.ai.index import store
from parcours.ai.models import ASSISTANTS, FEEDBACK, InsightChunk, InsightDocument, InsightQuestion
from parcours.core.db import utcnow
from parcours.core.errors import DomainError, Forbidden, Invalid, NotFound
from parcours.core.models import Role, User
from parcours.core.settings import get_settings

# which documents each assistant reads (by category; None: documents without one)
HELPDESK_CATEGORIES = ("hr", "it")
FILTERS = ("product", "category", "language", "source", "since", "until")
MAX_QUESTION = 1000
PASSAGES = 6  # passages an answer is composed from
SENTENCES = 3  # sentences an extractive answer keeps
# a sentence supports an answer when it is this close to the question (cosine, MiniLM) or,
# failing that, shares enough of its words: below both, the assistant says it does not know
SUPPORT_COSINE = 0.5
SUPPORT_WORDS = 0.6
STOP = (
    text.FR_WORDS
    | text.EN_WORDS
    | frozenset(
        [
            "quelle",
            "quelles",
            "quels",
            "combien",
            "comment",
            "pourquoi",
            "what",
            "which",
            "how",
            "why",
            "who",
            "when",
            "where",
            "does",
            "do",
            "did",
            "est",
            "sont",
            "ont",
            "nos",
            "notre",
            "our",
            "your",
            "votre",
            "vos",
            "there",
        ]
    )
)


class SearchUnavailable(DomainError):
    status = 503
    title = "Search unavailable"


@dataclass
class Found:
    chunk: InsightChunk
    document: InsightDocument
    score: float
    ranks: dict = field(default_factory=dict)

    @property
    def href(self) -> str:
        return f"/insight/documents/{self.document.id}?page={self.chunk.page}#p{self.chunk.page}"


def _filters(raw: dict | None) -> dict:
    out: dict = {}
    for name, value in (raw or {}).items():
        if name not in FILTERS:
            raise Invalid(f"Unknown filter {name}.", field=name)
        value = (value or "").strip() if isinstance(value, str) else value
        if value in ("", None):
            continue
        if name in ("since", "until"):
            value = service.when(value, name)
        elif name == "language" and value not in ("fr", "en"):
            raise Invalid("Language must be fr or en.", field=name)
        elif name == "source" and value not in service.SOURCES:
            raise Invalid(f"Source must be one of {', '.join(service.SOURCES)}.", field=name)
        out[name] = value
    return out


def _documents(session: Session, assistant: str, filters: dict) -> frozenset[int] | None:
    """The documents an assistant with these filters reads (None: any)."""
    D = InsightDocument
    stmt = select(D.id).where(D.state.in_(("indexed", "indexing")))
    wheres = []
    if assistant == "helpdesk":
        wheres.append(D.category.in_(HELPDESK_CATEGORIES))
    elif assistant == "medinfo":
        wheres.append(D.source == "content")
    else:
        wheres.append(D.category.is_(None) | D.category.not_in(HELPDESK_CATEGORIES))
    for name, column in (("product", D.product), ("category", D.category)):
        if name in filters:
            wheres.append(column == filters[name])
    if "language" in filters:
        wheres.append(D.language == filters["language"])
    if "source" in filters:
        wheres.append(D.source == filters["source"])
    if "since" in filters:
        wheres.append(D.doc_date >= filters["since"])
    if "until" in filters:
        wheres.append(D.doc_date <= filters["until"])
    return frozenset(session.scalars(stmt.where(*wheres)).all())


def search(
    session: Session,
    user: User,
    query: str,
    *,
    k: int = 10,
    mode: str = "hybrid",
    assistant: str = "insight",
    filters: dict | None = None,
) -> list[Found]:
    """Passages for a query, best first, never one the user may not read."""
    query = _question(query, "q")
    if mode not in retrieval.MODES:
        raise Invalid(f"Mode must be one of {', '.join(retrieval.MODES)}.", field="mode")
    if assistant not in ASSISTANTS:
        raise Invalid("Unknown assistant.", field="assistant")
    if not 1 <= k <= 100:
        raise Invalid("Between 1 and 100 results.", field="k")
    docs = _documents(session, assistant, _filters(filters))
    scope = service.scope_for(session, user, docs)
    from parcours.ai.opensearch import OpenSearchError

    try:
        hits = retrieval.search(
            store(get_settings().insight_dir), query, k * 2, mode, scope, session.connection()
        )
    except OpenSearchError as exc:
        raise SearchUnavailable(str(exc)) from exc
    if not hits:
        return []
    rows = session.execute(
        select(InsightChunk, InsightDocument)
        .join(InsightDocument, InsightDocument.id == InsightChunk.document_id)
        .where(InsightChunk.id.in_([h.chunk_id for h in hits]))
    ).all()
    by_id = {c.id: (c, d) for c, d in rows}
    groups = service.groups_of(session, user)
    in_force = _content_in_force(session, [d for _c, d in rows])
    out = []
    for h in hits:
        pair = by_id.get(h.chunk_id)
        # the indexes filter by access already; the database has the last word (a document
        # removed or re-permissioned since the index was written never shows)
        if pair is None or not service.may_read(session, user, pair[1], groups):
            continue
        if pair[1].id not in docs or not _in_force(session, pair[1], in_force):
            continue
        out.append(Found(pair[0], pair[1], h.score, h.ranks))
        if len(out) == k:
            break
    return out


def _content_in_force(session: Session, docs) -> set[int]:
    """Of these documents from the content library, those whose version is still approved,
    inside its dates and not replaced, now (invariant 2: a withdrawal takes effect at once,
    not at the worker's next pass)."""
    from parcours.content import service as content
    from parcours.content.models import ContentVersion

    refs = {
        d.id: int(d.source_ref.split(":", 1)[1])
        for d in docs
        if d.source == "content" and d.source_ref.startswith("version:")
    }
    if not refs:
        return set()
    day = content.today()
    wanted = select(ContentVersion).where(ContentVersion.id.in_(set(refs.values())))
    versions = {v.id: v for v in session.scalars(wanted)}
    return {
        doc_id
        for doc_id, version_id in refs.items()
        if (v := versions.get(version_id)) is not None
        and content.is_valid_on(v, day)
        and not content.replaced_on(session, v, day)
    }


def _in_force(session: Session, doc: InsightDocument, in_force: set[int]) -> bool:
    return doc.source != "content" or doc.id in in_force


def _question(value: str, field: str) -> str:
    value = " ".join((value or "").split())
    if not value:
        raise Invalid("Type a question.", field=field)
    if len(value) > MAX_QUESTION:
        raise Invalid(f"At most {MAX_QUESTION} characters.", field=field)
    if not text.words(value):
        raise Invalid("The question has no word to search for.", field=field)
    return value


# --- answers ------------------------------------------------------------------------------


def _keywords(value: str) -> set[str]:
    return {text.fold(w)[:6] for w in text.words(value) if len(w) > 2 and w not in STOP}


@dataclass
class Composed:
    text: str
    cited: list[Found]
    supported: bool
    method: str


def compose(question: str, found: list[Found]) -> Composed:
    """An extractive answer: the sentences of the passages closest to the question (by
    meaning and by shared words), without repeats, in the order of the passages, each
    followed by the number of its passage."""
    if not found:
        return Composed("", [], False, "extractive")
    candidates: list[tuple[int, int, str]] = []
    for p, f in enumerate(found[:PASSAGES]):
        for s, sentence in enumerate(text.sentences(f.chunk.text)[:15]):
            # a sentence that says something: not a title or a heading, not a page number
            if 5 <= len(sentence.split()) <= 80 and sentence != f.document.title:
                candidates.append((p, s, sentence))
    if not candidates:
        return Composed("", [], False, "extractive")
    q_words = _keywords(question)
    vectors = embed.passages([question] + [c[2] for c in candidates])
    cosine = vectors[1:] @ vectors[0]
    overlap = np.array([len(q_words & _keywords(c[2])) / max(1, len(q_words)) for c in candidates])
    score = 0.7 * cosine + 0.3 * overlap
    best = int(np.argmax(score))
    supported = bool(cosine.max() >= SUPPORT_COSINE or overlap[best] >= SUPPORT_WORDS)
    if not supported:
        return Composed("", [], False, "extractive")
    chosen: list[int] = []
    floor = max(0.3, float(score[best]) * 0.75)
    for i in np.argsort(-score):
        if score[i] < floor or len(chosen) == SENTENCES:
            break
        words_i = set(text.words(candidates[i][2]))
        if any(
            len(words_i & set(text.words(candidates[j][2])))
            / max(1, len(words_i | set(text.words(candidates[j][2]))))
            > 0.6
            for j in chosen
        ):
            continue
        chosen.append(int(i))
    chosen.sort(key=lambda i: (candidates[i][0], candidates[i][1]))
    numbers: dict[int, int] = {}
    parts = []
    for i in chosen:
        p = candidates[i][0]
        n = numbers.setdefault(p, len(numbers) + 1)
        parts.append(f"{candidates[i][2]} [{n}]")
    cited = [found[p] for p in sorted(numbers, key=numbers.get)]
    return Composed(" ".join(parts), cited, True, "extractive")


CITATION = re.compile(r"\[\s*\d+(?:\s*[,;]\s*\d+)*\s*\]")


def renumber(body: str, cited: list[int]) -> tuple[str, dict[int, int]]:
    """The model's citations renumbered 1, 2, … in the order of the passages it cited
    ([2], [2, 5] and [2][5] alike); the old → new numbers."""
    numbers = {old: new for new, old in enumerate(sorted(set(cited)), start=1)}

    def one(m: re.Match) -> str:
        kept = [str(numbers[int(n)]) for n in re.findall(r"\d+", m[0]) if int(n) in numbers]
        return f"[{', '.join(kept)}]" if kept else ""

    return CITATION.sub(one, body), numbers


def _generated(question: str, found: list[Found], lang: str) -> Composed | None:
    """The configured model's answer from the passages only; None when none is configured
    or it cannot be reached (the extractive answer is given instead)."""
    from parcours.ai import llm

    if not llm.configured() or not found:
        return None
    passages = [
        llm.Passage(n, f.chunk.text, f.chunk.location, f.document.title)
        for n, f in enumerate(found[:PASSAGES], start=1)
    ]
    try:
        out = llm.answer(question, passages, lang)
    except llm.LlmUnavailable:
        return None
    method = f"llm:{get_settings().llm_model or 'model'}"[:120]
    if out is None:
        return Composed("", [], False, method)
    body, numbers = renumber(out.text, out.cited)
    cited = [found[old - 1] for old in sorted(numbers)]
    return Composed(body.strip(), cited, True, method)


def ask(
    session: Session,
    user: User,
    question: str,
    *,
    assistant: str = "insight",
    filters: dict | None = None,
    language: str | None = None,
    hcp_id: int | None = None,
) -> InsightQuestion:
    """Answer a question from the passages the asker may read, and keep the record."""
    started = time.perf_counter()
    question = _question(question, "question")
    if assistant not in ASSISTANTS:
        raise Invalid("Unknown assistant.", field="assistant")
    if hcp_id is not None and assistant != "medinfo":
        raise Invalid("Only a medical-information question is for an HCP.", field="hcp_id")
    if assistant == "medinfo":
        if user.role not in (Role.rep, Role.manager, Role.admin, Role.marketing):
            raise Forbidden("Medical information requests are drafted by field teams.")
        if hcp_id is None:
            raise Invalid("Choose the HCP who asked.", field="hcp_id")
        from parcours.accounts.service import can_read

        if not can_read(session, user, hcp_id):  # unknown, or outside the asker's territories
            raise Invalid("No HCP with this id among the accounts you may read.", field="hcp_id")
    filters = _filters(filters)
    lang = language if language in ("fr", "en") else text.language(question, user.language or "en")
    found = search(session, user, question, k=PASSAGES, assistant=assistant, filters=filters)
    composed = _generated(question, found, lang) or compose(question, found)
    if composed.supported:
        outcome = "answered"
    else:
        outcome = "handover" if assistant == "helpdesk" else "refused"
    record = InsightQuestion(
        user_id=user.id,
        assistant=assistant,
        question=question,
        language=lang,
        filters={k: str(v) for k, v in filters.items()},
        answer=composed.text or None,
        passages=[
            {
                "n": n,
                "chunk_id": f.chunk.id,
                "document_id": f.document.id,
                "page": f.chunk.page,
                "location": f.chunk.location,
                "score": round(f.score, 5),
            }
            for n, f in enumerate(composed.cited, start=1)
        ],
        outcome=outcome,
        method=composed.method,
        hcp_id=hcp_id,
        review_state="pending" if assistant == "medinfo" and composed.supported else None,
        took_ms=int((time.perf_counter() - started) * 1000),
        # set, not left unloaded: the audit trail's "before" of a later change reads them
        feedback=None,
        feedback_note=None,
        reply=None,
        handled_by=None,
        reviewed_by=None,
        reviewed_at=None,
    )
    session.add(record)
    session.flush()
    return record


def cited(session: Session, user: User, record: InsightQuestion) -> list[Found]:
    """The passages a recorded answer cites, as the asker may still read them."""
    ids = [p["chunk_id"] for p in record.passages]
    if not ids:
        return []
    rows = session.execute(
        select(InsightChunk, InsightDocument)
        .join(InsightDocument, InsightDocument.id == InsightChunk.document_id)
        .where(InsightChunk.id.in_(ids))
    ).all()
    by_id = {c.id: (c, d) for c, d in rows}
    groups = service.groups_of(session, user)
    out = []
    for p in record.passages:
        pair = by_id.get(p["chunk_id"])
        if pair and service.may_read(session, user, pair[1], groups):
            out.append(Found(pair[0], pair[1], p["score"]))
    return out


def answer_readable(session: Session, user: User, record: InsightQuestion) -> bool:
    """Whether the viewer may still read every document the answer was taken from (its
    sentences are theirs): an admin may; others not once one is restricted or removed."""
    if user.role == Role.admin or not record.passages:
        return True
    return len(cited(session, user, record)) == len(record.passages)


def get_question(session: Session, user: User, question_id: int) -> InsightQuestion:
    record = session.get(InsightQuestion, question_id)
    if record is None:
        raise NotFound("No such question.")
    if record.user_id != user.id and user.role != Role.admin and not _handles(user, record):
        raise NotFound("No such question.")
    return record


def _handles(user: User, record: InsightQuestion) -> bool:
    return (record.assistant == "medinfo" and user.role == Role.reviewer) or (
        record.assistant == "helpdesk" and record.outcome == "handover" and user.role == Role.admin
    )


def feedback(
    session: Session, user: User, record: InsightQuestion, verdict: str, note: str = ""
) -> None:
    if record.user_id != user.id:
        raise Forbidden("Only the person who asked can rate the answer.")
    if verdict not in FEEDBACK:
        raise Invalid("Feedback is up or down.", field="feedback")
    if len(note) > 2000:
        raise Invalid("At most 2000 characters.", field="note")
    record.feedback, record.feedback_note = verdict, note.strip() or None
    session.flush()


def history(session: Session, user: User, assistant: str, limit: int = 12):
    return session.scalars(
        select(InsightQuestion)
        .where(InsightQuestion.user_id == user.id, InsightQuestion.assistant == assistant)
        .order_by(InsightQuestion.id.desc())
        .limit(limit)
    ).all()


# --- help desk hand-over and medical information review ------------------------------------


def handovers(session: Session, user: User, *, open_only: bool = True):
    if user.role != Role.admin:
        raise Forbidden("The help-desk queue is for admins.")
    stmt = select(InsightQuestion).where(
        InsightQuestion.assistant == "helpdesk", InsightQuestion.outcome == "handover"
    )
    if open_only:
        stmt = stmt.where(InsightQuestion.reply.is_(None))
    return session.scalars(stmt.order_by(InsightQuestion.id.desc()).limit(200)).all()


def reply(session: Session, user: User, record: InsightQuestion, body: str) -> None:
    """A person answers a question the help desk handed over."""
    if user.role != Role.admin or record.outcome != "handover":
        raise Forbidden("Only admins answer handed-over questions.")
    body = body.strip()
    if not body:
        raise Invalid("Write the reply.", field="reply")
    if len(body) > 5000:
        raise Invalid("At most 5000 characters.", field="reply")
    record.reply, record.handled_by = body, user.id
    session.flush()


def review_queue(session: Session, user: User):
    if user.role not in (Role.reviewer, Role.admin):
        raise Forbidden("Medical information answers are reviewed by medical reviewers.")
    return session.scalars(
        select(InsightQuestion)
        .where(InsightQuestion.assistant == "medinfo", InsightQuestion.review_state == "pending")
        .order_by(InsightQuestion.id)
        .limit(200)
    ).all()


def review(
    session: Session, user: User, record: InsightQuestion, decision: str, answer: str | None
) -> None:
    """A person approves (possibly after editing) or rejects a drafted medical answer;
    nothing reaches the HCP before this."""
    if user.role != Role.reviewer or (user.review_role or "medical") != "medical":
        raise Forbidden("Only a medical reviewer approves medical information answers.")
    if record.assistant != "medinfo" or record.review_state != "pending":
        raise Invalid("This answer is not waiting for review.", field="decision")
    if decision not in ("approved", "rejected"):
        raise Invalid("Approve or reject.", field="decision")
    if answer is not None:
        answer = answer.strip()
        if decision == "approved" and not answer:
            raise Invalid("An approved answer cannot be empty.", field="answer")
        record.answer = answer[:20000]
    record.review_state, record.reviewed_by, record.reviewed_at = decision, user.id, utcnow()
    session.flush()
