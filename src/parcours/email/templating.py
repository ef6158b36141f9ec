"""Email templates: the only tokens a rep may fill, checked at upload and filled when sending.

A template is an HTML file approved like any content. Its text is locked: the rep's
choices reach it only through these tokens, each filled by the server from known data or
from a closed list, never from free text.
"""

from __future__ import annotations

import re
from html import escape

from parcours.core.errors import Invalid

# token -> where its value comes from
TOKENS = {
    "recipient_name": "the HCP's name, from the account",
    "recipient_title": "the HCP's title (Dr, Pr), from the account",
    "rep_signature": "the sending rep's name and email, from their user",
    "phrase": "one of the template's approved phrases (its key messages)",
    "date": "a date the rep offers, within the next 90 days",
    "content_link": "a link to approved content valid today",
    "unsubscribe_link": "the one-click unsubscribe link",
    # meeting invitations only: filled from the meeting, never by the rep
    "meeting_link": "the HCP's personal link to the remote meeting",
    "meeting_passcode": "the HCP's passcode for that meeting",
    "meeting_time": "the meeting's date and time, in the HCP's time zone",
}
MEETING_TOKENS = ("meeting_link", "meeting_passcode", "meeting_time")
TOKEN = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
ANY_BRACES = re.compile(r"\{\{|\}\}|\{%|%\}")
MAX_BYTES = 500_000
FORBIDDEN = re.compile(r"<\s*(script|iframe|object|embed|form)\b", re.I)


def looks_like_html(head: bytes) -> bool:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:20].lower()
    return start.startswith(b"<!doctype html") or start.startswith(b"<html")


def check_template(html: str) -> list[str]:
    """The tokens an email template uses; Invalid when it uses others or unsafe markup."""
    if len(html.encode()) > MAX_BYTES:
        raise Invalid("An email template is at most 500 KB.", field="file")
    used = TOKEN.findall(html)
    unknown = sorted({t for t in used if t not in TOKENS})
    if unknown:
        raise Invalid(
            f"This template uses {{{{ {unknown[0]} }}}}, which is not a token a rep may fill "
            f"(allowed: {', '.join(TOKENS)}).",
            field="file",
        )
    if ANY_BRACES.search(TOKEN.sub("", html)):
        raise Invalid("This template has braces that are not a known token.", field="file")
    if FORBIDDEN.search(html):
        raise Invalid(
            "An email template cannot hold scripts, frames, objects or forms.", field="file"
        )
    if "unsubscribe_link" not in used:
        raise Invalid(
            "An email template needs {{ unsubscribe_link }} (one-click unsubscribe).", field="file"
        )
    return list(dict.fromkeys(used))


def fill(html: str, values: dict[str, str], *, raw: frozenset[str] = frozenset()) -> str:
    """The template with its tokens replaced; values are escaped unless listed in raw."""

    def one(match: re.Match) -> str:
        name = match.group(1)
        value = values.get(name, "")
        return value if name in raw else escape(value)

    return TOKEN.sub(one, html)


_BLOCK_END = re.compile(r"</(p|div|h[1-6]|li|tr|table)\s*>|<br\s*/?>", re.I)
_LINK = re.compile(r"<a\b[^>]*href=\"([^\"]*)\"[^>]*>(.*?)</a>", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")
_HEAD = re.compile(r"<(head|style|script)\b.*?</\1\s*>", re.I | re.S)


def to_text(html: str) -> str:
    """The plain-text alternative: paragraphs kept, links written out, tags dropped."""
    from html import unescape

    body = _HEAD.sub("", html)
    body = _LINK.sub(lambda m: f"{_TAG.sub('', m.group(2)).strip()} ({m.group(1)})", body)
    body = _BLOCK_END.sub("\n", body)
    lines = [" ".join(unescape(_TAG.sub("", line)).split()) for line in body.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()
