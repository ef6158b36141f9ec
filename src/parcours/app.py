"""The ASGI application: routers, middleware and the error handlers that render domain errors."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from sqlalchemy.exc import DataError, StatementError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from parcours.core.db import get_engine
from parcours.core.deps import LoginRequired
from parcours.core.errors import DomainError
from parcours.core.settings import get_settings

PKG = Path(__file__).resolve().parent
PROBLEM = "application/problem+json"


def problem(
    status: int, title: str, detail: str, errors: list | None = None, headers: dict | None = None
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


UPLOAD_PATHS = re.compile(r"^/(api/v1/)?(content(/\d+/versions)?(/new)?|insight/documents)/?$")


def _signed_in(scope) -> bool:
    """A bearer token or a session cookie is there (checked later): only then a big body is
    read, so that nobody anonymous makes the server spool 200 MB before refusing them."""
    headers = dict(scope["headers"])
    auth = headers.get(b"authorization", b"")
    return auth[:7].lower() == b"bearer " or b"parcours=" in headers.get(b"cookie", b"")


class BodyLimit:
    """Refuse request bodies over the configured size before anything reads them."""

    def __init__(self, app, max_bytes: int, upload_bytes: int = 0):
        self.app = app
        self.max_bytes = max_bytes
        self.upload_bytes = upload_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if self.upload_bytes and UPLOAD_PATHS.match(scope["path"]) and _signed_in(scope):
            # file uploads have their own limit (the route checks the file's own size too)
            limited_app = BodyLimit(self.app, self.upload_bytes)
            return await limited_app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            resp = problem(
                413,
                "Payload too large",
                f"The request body is over {self.max_bytes} bytes.",
                [{"field": "body", "message": "too large"}],
            )
            return await resp(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            resp = problem(
                413,
                "Payload too large",
                f"The request body is over {self.max_bytes} bytes.",
                [{"field": "body", "message": "too large"}],
            )
            await resp(scope, receive, send)


class _TooLarge(Exception):
    pass


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "form")]
    return ".".join(parts) or "body"


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        title="parcours",
        version="0.1.0",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
    )

    from parcours.accounts import api as accounts_api
    from parcours.accounts import pages as accounts_pages
    from parcours.activities import api as activities_api
    from parcours.activities import pages as activities_pages
    from parcours.ai import api as ai_api
    from parcours.ai import document_pages as ai_document_pages
    from parcours.ai import pages as ai_pages
    from parcours.analytics import api as analytics_api
    from parcours.analytics import pages as analytics_pages
    from parcours.consent import api as consent_api
    from parcours.consent import pages as consent_pages
    from parcours.content import api as content_api
    from parcours.content import file_pages as content_files
    from parcours.content import pages as content_pages
    from parcours.content import player as content_player
    from parcours.content import review_pages as content_review
    from parcours.core import api as core_api
    from parcours.core import pages as core_pages
    from parcours.email import api as email_api
    from parcours.email import campaign_pages
    from parcours.email import pages as email_pages
    from parcours.meetings import pages as meeting_pages
    from parcours.meetings import quality as meeting_quality
    from parcours.meetings import room as meeting_room
    from parcours.web import pages as web_pages

    for module in (
        core_api,
        accounts_api,
        activities_api,
        content_api,
        consent_api,
        email_api,
        analytics_api,
        ai_api,
    ):
        app.include_router(module.router, prefix="/api/v1")
    for module in (
        core_pages,
        web_pages,
        accounts_pages,
        activities_pages,
        content_pages,
        content_review,
        content_files,
        content_player,
        consent_pages,
        email_pages,
        campaign_pages,
        meeting_quality,  # /meetings/live before /meetings/{id}
        meeting_pages,
        meeting_room,
        analytics_pages,
        ai_pages,
        ai_document_pages,
    ):
        app.include_router(module.router)

    app.mount("/static", StaticFiles(directory=str(PKG / "web" / "static")), name="static")
    vendor = settings.static_dir
    vendor.mkdir(parents=True, exist_ok=True)
    app.mount("/vendor", StaticFiles(directory=str(vendor)), name="vendor")

    @app.get("/healthz", include_in_schema=False)
    def healthz():
        try:
            with get_engine().connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # noqa: BLE001 - any database failure means unhealthy
            return problem(503, "Database unavailable", str(exc.__class__.__name__))
        return {"status": "ok"}

    @app.exception_handler(DomainError)
    async def domain_error(request: Request, exc: DomainError):
        if _is_api(request):
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
            return problem(exc.status, exc.title, exc.detail, exc.errors, headers)
        from parcours.web.pages import error_page

        return error_page(request, exc.status, exc.detail)

    async def out_of_range(request: Request, exc: Exception):
        # A number too large for its column, or text PostgreSQL refuses (NUL bytes):
        # the client's input, not our failure.
        detail = "A value is out of range or contains characters that cannot be stored."
        if _is_api(request):
            return problem(422, "Invalid input", detail, [{"field": "body", "message": detail}])
        from parcours.web.pages import error_page

        return error_page(request, 422, detail)

    app.add_exception_handler(OverflowError, out_of_range)
    app.add_exception_handler(DataError, out_of_range)

    @app.exception_handler(StatementError)
    async def statement_error(request: Request, exc: StatementError):
        if isinstance(exc.orig, OverflowError | ValueError):
            return await out_of_range(request, exc)
        raise exc

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired):
        target = "/login?next=" + request.url.path
        if request.headers.get("hx-request"):
            return JSONResponse({}, status_code=401, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        errors = [{"field": _field(tuple(e["loc"])), "message": e["msg"]} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        if _is_api(request):
            return problem(422, "Invalid input", detail, errors)
        from parcours.web.pages import error_page

        return error_page(request, 422, detail)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        if _is_api(request) or exc.status_code == 405:
            return problem(exc.status_code, str(exc.detail), str(exc.detail))
        from parcours.web.pages import error_page

        return error_page(request, exc.status_code, str(exc.detail))

    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret(),
        session_cookie="parcours",
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=settings.cookie_secure,
    )
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        upload_bytes=settings.content_max_bytes + 1_000_000,
    )
    return app
