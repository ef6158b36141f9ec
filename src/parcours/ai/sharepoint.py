"""SharePoint and OneDrive drives read over Microsoft Graph, change by change (delta sync)."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePath
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from parcours.ai.extract import FORMATS
from parcours.core.settings import Settings

# throttled (429) or briefly unavailable (503): how often to try again, and the longest
# Retry-After we wait for; beyond it the sync stops and the next run starts where this one did
MAX_ATTEMPTS = 5
MAX_WAIT_S = 120.0
RETRY_STATUSES = {429, 502, 503, 504}
# a 410 Gone sends us back to a full enumeration; twice in one run means something is wrong
MAX_RESYNCS = 2
# a token is fetched again this long before it expires (or halfway, for short-lived ones)
TOKEN_MARGIN_S = 300

Ingest = Callable[[str, str, bytes, dict[str, Any]], object]


class GraphError(Exception):
    """The sync cannot go on: credentials refused, Graph unreachable, throttled too long or an
    answer we cannot read. Nothing after the last stored cursor is lost: run it again later."""


@dataclass
class SyncResult:
    """What one sync of one drive did.

    cursor is the delta link to store for next time. skipped counts files left alone: eTag
    unchanged, or not a format the insight engine reads. After a full enumeration (full is
    True: no cursor, or the drive asked for a resync), seen holds every live file's
    source_ref, so that documents of this drive not in it can be dropped."""

    cursor: str | None
    added: int = 0
    updated: int = 0
    removed: int = 0
    skipped: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    full: bool = False
    seen: set[str] = field(default_factory=set)


class _Gone(Exception):
    def __init__(self, location: str | None):
        self.location = location


_tokens: dict[tuple[str, ...], tuple[str, float]] = {}
_tokens_lock = threading.Lock()


def configured(settings: Settings) -> bool:
    """Whether an app and at least one drive are set."""
    return bool(
        settings.graph_tenant_id
        and settings.graph_client_id
        and settings.graph_client_secret
        and settings.graph_drives
    )


def client_for(settings: Settings) -> httpx.Client:
    """An HTTP client for Graph: generous read timeout for downloads, redirects followed."""
    return httpx.Client(
        timeout=httpx.Timeout(60.0, connect=10.0),
        follow_redirects=True,
        headers={"Accept": "application/json", "User-Agent": "parcours-insight/1"},
    )


def source_ref(drive_id: str, item_id: str) -> str:
    return f"{drive_id}:{item_id}"


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def _token_key(settings: Settings) -> tuple[str, ...]:
    secret = hashlib.sha256(settings.graph_client_secret.encode()).hexdigest()
    return (settings.graph_login_url, settings.graph_tenant_id, settings.graph_client_id, secret)


def forget_token(settings: Settings) -> None:
    """Drop the cached token (Graph refused it: revoked, or the app's rights changed)."""
    with _tokens_lock:
        _tokens.pop(_token_key(settings), None)


def access_token(client: httpx.Client, settings: Settings) -> str:
    """An app-only token (OAuth2 client credentials), cached until shortly before it expires."""
    key = _token_key(settings)
    with _tokens_lock:
        cached = _tokens.get(key)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        missing = [
            f"PARCOURS_{name.upper()}"
            for name in ("graph_tenant_id", "graph_client_id", "graph_client_secret")
            if not getattr(settings, name)
        ]
        if missing:
            raise GraphError(f"SharePoint is not configured: {', '.join(missing)} not set.")
        url = (
            f"{settings.graph_login_url.rstrip('/')}/{quote(settings.graph_tenant_id, safe='')}"
            "/oauth2/v2.0/token"
        )
        scheme, host = _origin(settings.graph_base_url)
        form = {
            "grant_type": "client_credentials",
            "client_id": settings.graph_client_id,
            "client_secret": settings.graph_client_secret,
            # the Graph resource of this cloud (graph.microsoft.com, or a national cloud's)
            "scope": f"{scheme}://{host}/.default",
        }
        try:
            resp = client.post(url, data=form)
        except httpx.HTTPError as exc:
            raise GraphError(f"Microsoft Entra ID cannot be reached at {url}: {exc}.") from exc
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
            code = body.get("error", "") if isinstance(body, dict) else ""
            reason = body.get("error_description", "") if isinstance(body, dict) else ""
            reason = reason.splitlines()[0] if reason else resp.text[:200]
            raise GraphError(
                f"Microsoft Entra ID refused the app's credentials (HTTP {resp.status_code}"
                f"{', ' + code if code else ''}): {reason} Check PARCOURS_GRAPH_TENANT_ID, "
                "PARCOURS_GRAPH_CLIENT_ID and PARCOURS_GRAPH_CLIENT_SECRET."
            )
        lifetime = float(body.get("expires_in", 3599))
        expires = time.monotonic() + lifetime - min(TOKEN_MARGIN_S, lifetime / 2)
        _tokens[key] = (body["access_token"], expires)
        return body["access_token"]


def _retry_after(resp: httpx.Response | None, attempt: int) -> float:
    value = resp.headers.get("Retry-After") if resp is not None else None
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass  # an HTTP date: rare from Graph; fall back on backing off
    return float(2**attempt)


def _request(client: httpx.Client, url: str, settings: Settings) -> httpx.Response:
    """GET a Graph URL with the app's token: a refused token is renewed once, throttling and
    brief outages are waited out (Retry-After), within bounds."""
    if _origin(url) != _origin(settings.graph_base_url):
        # links come back from Graph; never send our token anywhere else
        raise GraphError(f"Refusing to follow a link outside {settings.graph_base_url}: {url}")
    renewed = False
    for attempt in range(MAX_ATTEMPTS):
        token = access_token(client, settings)
        resp: httpx.Response | None = None
        try:
            resp = client.get(url, headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            if attempt == MAX_ATTEMPTS - 1:
                raise GraphError(f"Microsoft Graph cannot be reached ({url}): {exc}.") from exc
        else:
            if resp.status_code == 401 and not renewed:
                forget_token(settings)
                renewed = True
                continue
            if resp.status_code not in RETRY_STATUSES:
                return resp
        wait = _retry_after(resp, attempt)
        if attempt == MAX_ATTEMPTS - 1 or wait > MAX_WAIT_S:
            status = f"HTTP {resp.status_code}" if resp is not None else "no answer"
            raise GraphError(
                f"Microsoft Graph is throttling or unavailable ({status}, retry after "
                f"{wait:g} s): the sync stops here and goes on from its last cursor next time."
            )
        time.sleep(wait)
    raise GraphError(f"Microsoft Graph did not answer {url} after {MAX_ATTEMPTS} attempts.")


def _error_text(resp: httpx.Response) -> str:
    try:
        error = resp.json().get("error", {})
        return f"{error.get('code', '')}: {error.get('message', '')}".strip(": ")
    except (ValueError, AttributeError):
        return resp.text[:200]


def _delta_page(client: httpx.Client, url: str, settings: Settings) -> dict[str, Any]:
    resp = _request(client, url, settings)
    if resp.status_code == 410:
        raise _Gone(resp.headers.get("Location"))
    if resp.status_code in (401, 403):
        raise GraphError(
            f"Microsoft Graph refused to list the drive (HTTP {resp.status_code}, "
            f"{_error_text(resp)}): the app needs Files.Read.All or Sites.Read.All with admin "
            "consent."
        )
    if resp.status_code == 404:
        raise GraphError(f"Microsoft Graph knows no such drive ({_error_text(resp)}): {url}")
    if not resp.is_success:
        raise GraphError(f"Microsoft Graph answered HTTP {resp.status_code}: {_error_text(resp)}")
    try:
        page = resp.json()
    except ValueError as exc:
        raise GraphError(f"Microsoft Graph sent a delta page that is not JSON ({url}).") from exc
    if not isinstance(page, dict) or not isinstance(page.get("value"), list):
        raise GraphError(f"Microsoft Graph sent a delta page without items ({url}).")
    return page


def _meta(drive_id: str, item: dict[str, Any]) -> dict[str, Any]:
    people = []
    for key in ("createdBy", "lastModifiedBy"):
        name = ((item.get(key) or {}).get("user") or {}).get("displayName")
        if name and name not in people:
            people.append(name)
    modified = None
    if item.get("lastModifiedDateTime"):
        with contextlib.suppress(ValueError):
            modified = datetime.fromisoformat(item["lastModifiedDateTime"])
    folder = ((item.get("parentReference") or {}).get("path") or "").partition("root:")[2]
    return {
        "title": item.get("name"),
        "web_url": item.get("webUrl"),
        "modified": modified,
        "authors": ", ".join(people) or None,
        "etag": item.get("eTag"),
        "size": item.get("size"),
        "path": f"{folder}/{item.get('name')}" if folder else f"/{item.get('name')}",
        "drive_id": drive_id,
        "item_id": item.get("id"),
    }


def _download(client: httpx.Client, drive_id: str, item_id: str, settings: Settings) -> bytes:
    base = settings.graph_base_url.rstrip("/")
    url = f"{base}/drives/{quote(drive_id, safe='')}/items/{quote(item_id, safe='')}/content"
    # Graph answers 302 to a short-lived pre-authenticated URL on another host; httpx drops
    # the Authorization header when a redirect leaves the origin
    resp = _request(client, url, settings)
    if not resp.is_success:
        raise _ItemFailed(f"download failed (HTTP {resp.status_code}, {_error_text(resp)})")
    if len(resp.content) > settings.insight_max_bytes:
        raise _ItemFailed(f"larger than {settings.insight_max_bytes} bytes")
    return resp.content


class _ItemFailed(Exception):
    pass


def _apply(
    client: httpx.Client,
    drive_id: str,
    item: dict[str, Any],
    result: SyncResult,
    *,
    ingest: Ingest,
    remove: Callable[[str], object],
    known_etag: Callable[[str], str | None],
    settings: Settings,
) -> None:
    item_id = item.get("id")
    name = item.get("name") or str(item_id)
    if not item_id:
        return
    ref = source_ref(drive_id, item_id)
    try:
        if "deleted" in item:
            # a deleted item may come without its file or folder facet: remove() answers
            # False when it held nothing under that ref
            if "folder" not in item and remove(ref) is not False:
                result.removed += 1
            return
        if "file" not in item:
            return  # a folder, the root, a OneNote package
        result.seen.add(ref)
        known = known_etag(ref)
        if PurePath(name).suffix.lower() not in FORMATS:
            if known is not None:  # renamed to a format we do not read
                if remove(ref) is not False:
                    result.removed += 1
            else:
                result.skipped += 1
            return
        etag = item.get("eTag")
        if known is not None and etag and known == etag:
            result.skipped += 1
            return
        size = item.get("size")
        if isinstance(size, int) and size > settings.insight_max_bytes:
            raise _ItemFailed(f"larger than {settings.insight_max_bytes} bytes ({size})")
        data = _download(client, drive_id, item_id, settings)
        ingest(ref, name, data, _meta(drive_id, item))
    except GraphError:
        raise
    except Exception as exc:  # one bad file must not stop the drive: report it, go on
        result.errors.append((name, str(exc) or type(exc).__name__))
        return
    if known is None:
        result.added += 1
    else:
        result.updated += 1


def sync_drive(
    client: httpx.Client,
    drive_id: str,
    cursor: str | None,
    *,
    ingest: Ingest,
    remove: Callable[[str], object],
    known_etag: Callable[[str], str | None],
    reset: Callable[[], object],
    settings: Settings,
) -> SyncResult:
    """Apply a drive's changes since cursor (a delta link; None: every file) through the
    callbacks, and return the new cursor with counts and per-file errors.

    ingest(source_ref, filename, data, meta) takes a new or changed file (it may raise: the
    file is reported in errors and the sync goes on); remove(source_ref) a deleted one (it
    answers False when it held nothing under that ref); known_etag(source_ref) says which
    eTag was last ingested; reset() is called when Graph has forgotten the cursor (410 Gone),
    before enumerating from scratch.
    Raises GraphError when the sync cannot go on; the cursor to keep is then the old one.
    A file in errors is not listed again by the next delta unless it changes: keep the old
    cursor to try it again (what was taken is skipped by its eTag), or remember it."""
    root = f"{settings.graph_base_url.rstrip('/')}/drives/{quote(drive_id, safe='')}/root/delta"
    result = SyncResult(cursor=cursor, full=cursor is None)
    url = cursor or root
    resyncs = 0
    while True:
        try:
            page = _delta_page(client, url, settings)
        except _Gone as gone:
            resyncs += 1
            if resyncs > MAX_RESYNCS:
                raise GraphError(
                    f"Microsoft Graph asked drive {drive_id} to resync {resyncs} times in a row."
                ) from None
            reset()
            result.full = True
            result.seen.clear()
            # Graph's Location header is a fresh enumeration; without one, start over ourselves
            url = gone.location or root
            continue
        for item in page["value"]:
            if isinstance(item, dict):
                _apply(
                    client,
                    drive_id,
                    item,
                    result,
                    ingest=ingest,
                    remove=remove,
                    known_etag=known_etag,
                    settings=settings,
                )
        if page.get("@odata.nextLink"):
            url = page["@odata.nextLink"]
        elif page.get("@odata.deltaLink"):
            result.cursor = page["@odata.deltaLink"]
            return result
        else:
            raise GraphError(f"Microsoft Graph sent a delta page with no next or delta link: {url}")
