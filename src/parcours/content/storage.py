"""Where a version's files live, and the hashes that tie them to their signatures."""

from __future__ import annotations

import hashlib
from pathlib import Path

from parcours.content.models import ContentVersion
from parcours.core.errors import NotFound
from parcours.core.settings import Settings, get_settings

EXT = {"pdf": ".pdf", "pptx": ".pptx", "html5": ".zip", "email": ".html"}


def version_dir(version_id: int, settings: Settings | None = None) -> Path:
    return (settings or get_settings()).content_dir / str(version_id)


def original_path(version: ContentVersion) -> Path:
    ext = EXT.get(version.kind) or Path(version.filename).suffix.lower()[:8]
    return version_dir(version.id) / f"original{ext}"


# version files never change once written: the browser may keep them, but only for this user
FILE_HEADERS = {"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"}


def page_image(version: ContentVersion, page: int, *, thumb: bool = False) -> Path:
    if version.render_state != "ready" or not 1 <= page <= version.page_count:
        raise NotFound(f"This version has no rendered page {page}.")
    path = version_dir(version.id) / ("thumbs" if thumb else "pages") / f"{page:04d}.jpg"
    if not path.is_file():
        raise NotFound(f"This version has no image for page {page}.")
    return path


_hash_cache: dict[Path, tuple[tuple[int, ...], str]] = {}


def file_hash(path: Path) -> str | None:
    """sha256 of a file's bytes, cached by its stat so hot checks don't reread decks.

    The key holds ctime and inode besides size and mtime: mtime can be set back after
    an edit (touch -r), ctime cannot, so a rewrite in place is always read again.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    key = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    cached = _hash_cache.get(path)
    if cached and cached[0] == key:
        return cached[1]
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    _hash_cache[path] = (key, h.hexdigest())
    return h.hexdigest()
