"""Language, sentences and passages: how document text is cut for the indexes and answers."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from parcours.ai.extract import Section

# words that tell French from English (no model needed for two languages)
FR_WORDS = frozenset(
    [
        "le",
        "la",
        "les",
        "des",
        "du",
        "de",
        "un",
        "une",
        "et",
        "est",
        "sont",
        "dans",
        "pour",
        "par",
        "sur",
        "avec",
        "que",
        "qui",
        "ne",
        "pas",
        "au",
        "aux",
        "ce",
        "cette",
        "ces",
        "il",
        "elle",
        "nous",
        "vous",
        "ils",
        "leur",
        "plus",
        "ou",
        "où",
        "été",
        "être",
        "quel",
        "quelle",
        "quels",
        "combien",
        "comment",
        "pourquoi",
        "se",
        "sa",
        "son",
        "ses",
    ]
)
EN_WORDS = frozenset(
    [
        "the",
        "a",
        "an",
        "and",
        "is",
        "are",
        "in",
        "for",
        "by",
        "on",
        "with",
        "that",
        "which",
        "not",
        "of",
        "to",
        "at",
        "this",
        "these",
        "it",
        "we",
        "you",
        "they",
        "their",
        "more",
        "or",
        "was",
        "be",
        "been",
        "what",
        "how",
        "why",
        "which",
        "who",
        "many",
        "much",
        "does",
        "do",
        "has",
        "have",
    ]
)
# a passage: enough words to answer from, short enough for the embedding model (256 tokens)
CHUNK_WORDS = 140
CHUNK_MAX_WORDS = 200
SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+(?=[A-ZÀ-ÖØ-Ý0-9«\"(])|\n{2,}|\n(?=[-•*·]\s)")
HEADING_CHARS = 90
WORD = re.compile(r"[\w][\w'’-]*", re.UNICODE)


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def fold(word: str) -> str:
    """Lower case without accents: "hôpital" and "hopital" are one word."""
    nfkd = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in nfkd if not unicodedata.combining(c))


def language(text: str, default: str = "en") -> str:
    """fr or en, by which language's common words the text uses more."""
    ws = words(text[:5000])
    fr = sum(w in FR_WORDS for w in ws)
    en = sum(w in EN_WORDS for w in ws)
    if fr == en:
        if re.search(r"[éèêàçùû]", text[:2000]):
            return "fr"
        return default
    return "fr" if fr > en else "en"


def _blocks(text: str) -> list[str]:
    """Lines joined into paragraphs; a short line without punctuation followed by a line
    that starts a sentence (a title, a heading) is a block of its own instead of gluing onto
    the next sentence."""
    lines = [line.strip() for line in text.split("\n")]
    blocks: list[str] = []
    current: list[str] = []
    for i, line in enumerate(lines):
        if not line:
            if current:
                blocks.append(" ".join(current))
                current = []
            continue
        following = next((x for x in lines[i + 1 :] if x), "")
        heading = (
            len(line) <= HEADING_CHARS
            and not line.endswith((".", ",", ";", ":", "!", "?"))
            and ". " not in line
            and (not following or following[:1].isupper())
            and (not current or current[-1].endswith((".", "!", "?", ":")))
        )
        if heading:
            if current:
                blocks.append(" ".join(current))
                current = []
            blocks.append(line)
            continue
        current.append(line)
    if current:
        blocks.append(" ".join(current))
    return blocks


def sentences(text: str) -> list[str]:
    out = []
    for block in _blocks(text):
        parts = (" ".join(p.split()) for p in SENTENCE_END.split(block))
        out.extend(p for p in parts if len(p) > 1)
    return out


@dataclass
class Passage:
    page: int
    location: str
    heading: str | None
    language: str
    text: str


def passages(sections: list[Section], default_language: str = "en") -> list[Passage]:
    """Cut each section into passages of about CHUNK_WORDS words on sentence boundaries,
    never across a page, with the previous sentence repeated so that no fact is cut in two."""
    out: list[Passage] = []
    for section in sections:
        lang = language(section.text, default_language)
        current: list[str] = []
        count = 0
        for sentence in sentences(section.text):
            n = len(sentence.split())
            if n > CHUNK_MAX_WORDS:  # a table or a run-on line: cut by words
                tokens = sentence.split()
                pieces = [" ".join(tokens[i : i + CHUNK_WORDS]) for i in range(0, n, CHUNK_WORDS)]
            else:
                pieces = [sentence]
            for piece in pieces:
                size = len(piece.split())
                if current and count + size > CHUNK_WORDS:
                    out.append(_passage(section, lang, current))
                    current, count = current[-1:], len(current[-1].split())
                    if count + size > CHUNK_MAX_WORDS:
                        current, count = [], 0
                current.append(piece)
                count += size
        if current and (
            not out or out[-1].text != "\n".join(current) or out[-1].page != section.page
        ):
            out.append(_passage(section, lang, current))
    return out


def _passage(section: Section, lang: str, parts: list[str]) -> Passage:
    # one sentence a line: answers are cut again from these sentences
    return Passage(section.page, section.location, section.heading, lang, "\n".join(parts))
