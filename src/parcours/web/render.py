"""Template rendering shared by every domain's pages: one route, full page or HTMX partial."""

from __future__ import annotations

from pathlib import Path

from fastapi import Request
from fastapi.templating import Jinja2Templates
from jinja2 import ChoiceLoader, FileSystemLoader

from parcours.core import i18n
from parcours.core.deps import csrf_token

PKG = Path(__file__).resolve().parents[1]
DOMAINS = ("web", "core", "accounts", "activities")

templates = Jinja2Templates(directory=str(PKG / "web" / "templates"))
templates.env.loader = ChoiceLoader(
    [
        FileSystemLoader(str(PKG / d / "templates"))
        for d in DOMAINS
        if (PKG / d / "templates").exists()
    ]
)
templates.env.globals["format_number"] = i18n.format_number


def language(request: Request) -> str:
    user = getattr(request.state, "user", None)
    if user is not None and user.language in i18n.LANGUAGES:
        return user.language
    chosen = request.session.get("lang") if "session" in request.scope else None
    return chosen or i18n.pick_language(request.headers.get("accept-language"))


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def render(
    request: Request,
    name: str,
    context: dict | None = None,
    *,
    status: int = 200,
    partial: str | None = None,
    headers: dict | None = None,
):
    """Render name, or partial instead when the request comes from HTMX and one is given."""
    lang = language(request)
    ctx = {
        "request": request,
        "user": getattr(request.state, "user", None),
        "lang": lang,
        "t": lambda key, **kw: i18n.translate(lang, key, **kw),
        "fdate": lambda v, with_time=False: i18n.format_date(v, lang, with_time),
        "ftime": lambda v: i18n.format_time(v, lang),
        "fnum": lambda v, digits=0: i18n.format_number(v, lang, digits),
        "csrf": csrf_token(request),
        "path": request.url.path,
    }
    ctx.update(context or {})
    template = partial if partial and is_htmx(request) else name
    return templates.TemplateResponse(request, template, ctx, status_code=status, headers=headers)


def add_templates(module_file: str) -> None:
    """Let pages find a domain's templates: the `templates` folder beside module_file."""
    from pathlib import Path

    from jinja2 import ChoiceLoader, FileSystemLoader

    folder = str(Path(module_file).resolve().parent / "templates")
    loader = templates.env.loader
    if isinstance(loader, ChoiceLoader) and not any(
        folder in getattr(each, "searchpath", ()) for each in loader.loaders
    ):
        loader.loaders.append(FileSystemLoader(folder))
