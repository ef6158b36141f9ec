"""A local stand-in for Microsoft Graph: the subset the SharePoint connector uses.

It implements, as Microsoft documents them: the OAuth2 client-credentials token endpoint of
Entra ID; GET /drives/{id}/root/delta with pages linked by @odata.nextLink and a final
@odata.deltaLink carrying a token; items with the file, folder, root and deleted facets;
410 Gone with a Location header when a delta token has expired; 429 with Retry-After;
GET /drives/{id}/items/{id}/content answering 302 to a pre-authenticated download URL on
another host. It is a test double written from the documentation, not Graph itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from fastapi import FastAPI, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

SIGNING_KEY = secrets.token_bytes(16)
EPOCH = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@dataclass
class Item:
    id: str
    name: str
    parent_path: str = ""  # "" at the root, "/Études" in a folder
    folder: bool = False
    content: bytes = b""
    version: int = 1
    seq: int = 0  # the drive's change number of this item's last change
    deleted: bool = False
    downloadable: bool = True
    created_by: str = "Claire Martin"
    modified_by: str = "Claire Martin"

    @property
    def etag(self) -> str:
        return f'"{{{self.id}}},{self.version}"'


@dataclass
class Drive:
    id: str
    items: dict[str, Item] = field(default_factory=dict)
    seq: int = 0
    # delta tokens older than this change number are gone (410)
    oldest_token: int = 0

    def _touch(self, item: Item) -> Item:
        self.seq += 1
        item.seq = self.seq
        return item

    def add(self, name: str, content: bytes = b"", *, in_folder: str = "", **over) -> Item:
        item = Item(id=f"01{secrets.token_hex(6).upper()}", name=name, parent_path=in_folder)
        for key, value in over.items():
            setattr(item, key, value)
        item.content = content
        self.items[item.id] = item
        return self._touch(item)

    def add_folder(self, name: str) -> Item:
        return self.add(name, folder=True)

    def edit(self, item: Item, content: bytes, by: str | None = None) -> Item:
        item.content = content
        item.version += 1
        item.modified_by = by or item.modified_by
        return self._touch(item)

    def share(self, item: Item) -> Item:
        """A change that leaves the file as it was (sharing): it shows in delta, same eTag."""
        return self._touch(item)

    def delete(self, item: Item) -> Item:
        item.deleted = True
        return self._touch(item)

    def expire_tokens(self) -> None:
        self.oldest_token = self.seq + 1

    def by_name(self, name: str) -> Item:
        return next(i for i in self.items.values() if i.name == name)


@dataclass
class Call:
    method: str
    path: str
    query: str
    status: int
    at: float
    authorization: str | None


@dataclass
class Graph:
    """The tenant, its app, its drives and everything it was asked."""

    tenant_id: str = "contoso.onmicrosoft.com"
    client_id: str = "6f1c2a9e-0000-4000-8000-00000000c11e"
    client_secret: str = "s3cret~value"
    drives: dict[str, Drive] = field(default_factory=dict)
    page_size: int = 2
    expires_in: int = 3599
    tokens: set[str] = field(default_factory=set)
    token_requests: list[dict] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    throttle: int = 0  # how many of the next Graph requests get a 429
    retry_after: int = 1

    def drive(self, drive_id: str = "b!medical-library") -> Drive:
        return self.drives.setdefault(drive_id, Drive(drive_id))

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    def graph_calls(self, part: str) -> list[Call]:
        return [c for c in self.calls if part in c.path]


def _encode(state: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


def _decode(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))


def _tempauth(drive_id: str, item: Item) -> str:
    msg = f"{drive_id}/{item.id}/{item.version}".encode()
    return hmac.new(SIGNING_KEY, msg, hashlib.sha256).hexdigest()


def _error(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    body = {"error": {"code": code, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


def _item_json(drive: Drive, item: Item) -> dict:
    parent = f"/drives/{drive.id}/root:{item.parent_path}"
    if item.deleted:
        body = {
            "id": item.id,
            "name": item.name,
            "parentReference": {"driveId": drive.id, "path": parent},
            "deleted": {"state": "deleted"},
        }
        if item.folder:
            body["folder"] = {"childCount": 0}
        return body
    modified = EPOCH + timedelta(minutes=item.seq)
    path = quote(f"{item.parent_path}/{item.name}")
    body = {
        "id": item.id,
        "name": item.name,
        "eTag": item.etag,
        "cTag": f'"c:{{{item.id}}},{item.version}"',
        "size": len(item.content),
        "createdDateTime": EPOCH.isoformat().replace("+00:00", "Z"),
        "lastModifiedDateTime": modified.isoformat().replace("+00:00", "Z"),
        "webUrl": f"https://contoso.sharepoint.com/sites/medical/Shared%20Documents{path}",
        "parentReference": {"driveId": drive.id, "driveType": "documentLibrary", "path": parent},
        "createdBy": {"user": {"displayName": item.created_by}},
        "lastModifiedBy": {"user": {"displayName": item.modified_by}},
    }
    if item.folder:
        body["folder"] = {"childCount": 0}
    else:
        body["file"] = {"mimeType": "application/octet-stream"}
    return body


def graph_app(graph: Graph) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def record(request: Request, call_next):
        response = await call_next(request)
        graph.calls.append(
            Call(
                request.method,
                request.url.path,
                request.url.query,
                response.status_code,
                time.monotonic(),
                request.headers.get("authorization"),
            )
        )
        return response

    @app.post("/login/{tenant}/oauth2/v2.0/token")
    async def token(
        request: Request,
        tenant: str,
        grant_type: str = Form(""),
        client_id: str = Form(""),
        client_secret: str = Form(""),
        scope: str = Form(""),
    ):
        graph.token_requests.append(
            {"tenant": tenant, "grant_type": grant_type, "client_id": client_id, "scope": scope}
        )

        def refuse(status: int, error: str, description: str) -> JSONResponse:
            return JSONResponse(
                {"error": error, "error_description": description}, status_code=status
            )

        if tenant != graph.tenant_id:
            return refuse(400, "invalid_request", f"AADSTS90002: Tenant '{tenant}' not found.")
        if grant_type != "client_credentials":
            return refuse(400, "unsupported_grant_type", "AADSTS70003: Unsupported grant type.")
        if client_id != graph.client_id:
            return refuse(
                400, "unauthorized_client", f"AADSTS700016: Application {client_id} not found."
            )
        if not hmac.compare_digest(client_secret, graph.client_secret):
            return refuse(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        origin = f"{request.url.scheme}://{request.url.netloc}"
        if scope != f"{origin}/.default":
            return refuse(400, "invalid_scope", f"AADSTS70011: The scope {scope} is not valid.")
        access = secrets.token_urlsafe(24)
        graph.tokens.add(access)
        return {
            "token_type": "Bearer",
            "expires_in": graph.expires_in,
            "ext_expires_in": graph.expires_in,
            "access_token": access,
        }

    def refused(request: Request) -> JSONResponse | None:
        """The answer when Graph would not serve this request: throttled, or no valid token."""
        if graph.throttle > 0:
            graph.throttle -= 1
            return _error(
                429,
                "activityLimitReached",
                "Too many requests: the app has been throttled.",
                **{"Retry-After": str(graph.retry_after)},
            )
        scheme, _, access = request.headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or access not in graph.tokens:
            return _error(401, "InvalidAuthenticationToken", "Access token is missing or invalid.")
        return None

    @app.get("/v1.0/drives/{drive_id}/root/delta")
    async def delta(request: Request, drive_id: str, token: str | None = None):
        if answer := refused(request):
            return answer
        drive = graph.drives.get(drive_id)
        if drive is None:
            return _error(404, "itemNotFound", "The resource could not be found.")
        base = f"{request.base_url}v1.0/drives/{drive_id}/root/delta"
        # a delta link's token holds where the last enumeration ended; a next link's, also
        # the page and the change number this enumeration stops at
        state = {"since": None, "offset": 0, "upto": drive.seq, **(_decode(token) if token else {})}
        since = state["since"]
        if since is not None and since < drive.oldest_token:
            return _error(
                410,
                "resyncChangesApplyDifferences",
                "The delta token has expired: enumerate again.",
                Location=base,
            )
        upto = state["upto"]
        if since is None:  # the whole hierarchy: the root, then every live item
            root = {"id": "root", "name": "root", "root": {}, "folder": {"childCount": 0}}
            live = sorted((i for i in drive.items.values() if not i.deleted), key=lambda i: i.seq)
            items = [root] + [_item_json(drive, i) for i in live]
        else:
            changed = [i for i in drive.items.values() if since < i.seq <= upto]
            items = [_item_json(drive, i) for i in sorted(changed, key=lambda i: i.seq)]
        offset = state["offset"]
        page = {"value": items[offset : offset + graph.page_size]}
        if offset + graph.page_size < len(items):
            following = {**state, "offset": offset + graph.page_size}
            page["@odata.nextLink"] = f"{base}?token={_encode(following)}"
        else:
            page["@odata.deltaLink"] = f"{base}?token={_encode({'since': upto})}"
        return page

    @app.get("/v1.0/drives/{drive_id}/items/{item_id}/content")
    async def content(request: Request, drive_id: str, item_id: str):
        if answer := refused(request):
            return answer
        drive = graph.drives.get(drive_id)
        item = drive.items.get(item_id) if drive else None
        if item is None or item.deleted or item.folder or not item.downloadable:
            return _error(404, "itemNotFound", "The resource could not be found.")
        # the pre-authenticated URL lives on another host, as Graph's do
        port = request.url.port
        url = f"http://localhost:{port}/download/{drive_id}/{item_id}"
        return RedirectResponse(f"{url}?tempauth={_tempauth(drive_id, item)}", status_code=302)

    @app.get("/download/{drive_id}/{item_id}")
    async def download(drive_id: str, item_id: str, tempauth: str = ""):
        drive = graph.drives.get(drive_id)
        item = drive.items.get(item_id) if drive else None
        if item is None or not hmac.compare_digest(tempauth, _tempauth(drive_id, item)):
            return Response(status_code=401)
        return Response(item.content, media_type="application/octet-stream")

    return app
