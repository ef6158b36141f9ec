"""Files of content versions for the pages: rendered pages, originals, HTML5 packages."""

from __future__ import annotations

import hashlib
import hmac
import mimetypes
import time

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse

from parcours.content import service, storage
from parcours.content.models import ContentVersion
from parcours.core.deps import PageUser, SessionDep, page_user
from parcours.core.errors import NotFound
from parcours.core.models import User
from parcours.core.settings import get_settings
from parcours.web.pages import (
    is_id,
)
from parcours.web.render import templates

router = APIRouter()

# An HTML5 package runs in a sandboxed frame: its own files only, no network, no forms.
SITE_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; media-src 'self'; connect-src 'none'; form-action 'none'; "
    "frame-ancestors 'self'; base-uri 'none'; "
    # opaque origin even when opened outside its frame: a package never runs as parcours
    "sandbox allow-scripts"
)

EMAIL_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; sandbox"

# --- files --------------------------------------------------------------------------------------


def _image(session, user: User, version_id: int, page: int, thumb: bool) -> FileResponse:
    version = service.get_version(session, user, version_id)
    path = storage.page_image(version, page, thumb=thumb)
    return FileResponse(path, media_type="image/jpeg", headers=storage.FILE_HEADERS)


@router.get("/content/versions/{version_id}/pages/{page}.jpg")
def page_image(version_id: int, page: int, user: PageUser, session: SessionDep):
    return _image(session, user, version_id, page, thumb=False)


@router.get("/content/versions/{version_id}/thumbs/{page}.jpg")
def thumb_image(version_id: int, page: int, user: PageUser, session: SessionDep):
    return _image(session, user, version_id, page, thumb=True)


@router.get("/content/versions/{version_id}/original")
def original(version_id: int, user: PageUser, session: SessionDep):
    version = service.get_version(session, user, version_id)
    path = storage.original_path(version)
    if not path.is_file():
        raise NotFound("The file of this version is missing.")
    inline = version.kind in ("video", "image", "pdf", "email")
    headers = dict(storage.FILE_HEADERS)
    if version.kind == "email":  # shown as it will be read: no script, no request out
        headers["Content-Security-Policy"] = EMAIL_CSP
    return FileResponse(
        path,
        media_type=version.media_type,
        filename=version.filename,
        content_disposition_type="inline" if inline else "attachment",
        headers=headers,
    )


SITE_TOKEN_S = 12 * 3600


def _site_signature(version_id: int, user: User, expires: int) -> str:
    # the password hash's tail makes a password change revoke the addresses given out
    msg = f"site:{version_id}:{user.id}:{expires}:{user.password_hash[-16:]}"
    key = get_settings().secret().encode()
    return hmac.new(key, msg.encode(), hashlib.sha256).hexdigest()[:32]


def site_url(user: User, version: ContentVersion) -> str:
    """The package's address for this user, signed in the path: a sandboxed frame has an
    opaque origin, so the browser sends its requests without the session cookie."""
    hour = int(time.time()) // 3600 * 3600  # the same address for an hour: assets stay cached
    expires = hour + 3600 + SITE_TOKEN_S
    token = f"{user.id}.{expires}.{_site_signature(version.id, user, expires)}"
    return f"/content/versions/{version.id}/site/~{token}/index.html"


def _site_user(request: Request, session, version_id: int, token: str) -> User:
    user_id, _, rest = token.partition(".")
    expires, _, signature = rest.partition(".")
    user = session.get(User, int(user_id)) if is_id(user_id) else None
    if (
        user is None
        or not user.is_active
        or not (expires.isascii() and expires.isdigit() and len(expires) <= 12)
        or int(expires) < time.time()
        or not hmac.compare_digest(signature, _site_signature(version_id, user, int(expires)))
    ):
        raise NotFound("This address has expired: open the content again.")
    request.state.user = user
    return user


templates.env.globals["content_site_url"] = site_url


@router.get("/content/versions/{version_id}/site/{path:path}")
def site_file(request: Request, version_id: int, path: str, session: SessionDep):
    """A file of an HTML5 package, only from inside its unpacked folder."""
    if path.startswith("~"):
        token, _, path = path[1:].partition("/")
        user = _site_user(request, session, version_id, token)
    else:
        user = page_user(request, session, None)
    version = service.get_version(session, user, version_id)
    if version.kind != "html5" or version.render_state != "ready":
        raise NotFound("This version is not an HTML5 package.")
    root = (storage.version_dir(version.id) / "site").resolve()
    try:
        target = (root / (path or "index.html")).resolve()
    except (OSError, ValueError) as exc:
        raise NotFound("This file is not part of the package.") from exc
    if target.is_dir():
        target = target / "index.html"
    if not target.is_relative_to(root) or not target.is_file():
        raise NotFound("This file is not part of the package.")
    media_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    headers = {
        **storage.FILE_HEADERS,
        "Content-Security-Policy": SITE_CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    return FileResponse(target, media_type=media_type, headers=headers)
