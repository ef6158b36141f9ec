"""French and English from one catalogue: core/locales/<lang>.json and <domain>.<lang>.json."""

from __future__ import annotations

import json
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

LANGUAGES = ("fr", "en")
_DIR = Path(__file__).parent / "locales"


@lru_cache
def catalogue(lang: str) -> dict[str, str]:
    """The shared catalogue merged with each domain's own file (content.fr.json, …)."""
    path = _DIR / f"{lang}.json"
    messages = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    for part in sorted(_DIR.glob(f"*.{lang}.json")):
        messages.update(json.loads(part.read_text(encoding="utf-8")))
    return messages


def translate(lang: str, key: str, **params) -> str:
    """The message for key in lang, falling back to English, then to the key itself."""
    text = catalogue(lang).get(key) or catalogue("en").get(key) or key
    return text.format(**params) if params else text


def pick_language(accept_language: str | None, default: str = "fr") -> str:
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return default


def local(value: datetime) -> datetime:
    """An aware datetime shown in the site's time zone."""
    from zoneinfo import ZoneInfo

    from parcours.core.settings import get_settings

    return value.astimezone(ZoneInfo(get_settings().timezone)) if value.tzinfo else value


def format_date(value: date | datetime | None, lang: str, with_time: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = local(value)
    fmt = "%d/%m/%Y" if lang == "fr" else "%d %b %Y"
    if with_time:
        fmt += " %H:%M"
    return value.strftime(fmt)


def format_time(value: datetime | None, lang: str) -> str:
    return local(value).strftime("%H:%M") if value else ""


def format_number(value: float | int | None, lang: str, digits: int = 0) -> str:
    if value is None:
        return ""
    text = f"{value:,.{digits}f}"
    if lang == "fr":
        text = text.replace(",", "\u202f").replace(".", ",")
    return text
