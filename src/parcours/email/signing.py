"""DKIM signatures (RFC 6376, rsa-sha256, relaxed/relaxed) computed with OpenSSL.

dkimpy signs with RSA written in pure Python: 6.4 ms a message on this machine, more than
the whole budget of a 300-a-second sender. The signature itself is a few lines of the RFC
(canonicalise, hash, sign), so parcours writes the header here and signs through
`cryptography`; dkimpy stays the independent verifier in the tests.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

WSP = re.compile(rb"[ \t]+")
FOLD = re.compile(rb"\r\n(?=[ \t])")


@lru_cache(maxsize=4)
def _key(path: str, mtime_ns: int) -> rsa.RSAPrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} is not an RSA private key")
    return key


def load_key(path: Path) -> rsa.RSAPrivateKey:
    """The private key at path, parsed once (again when the file changes)."""
    return _key(str(path), path.stat().st_mtime_ns)


def _split(raw: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """(name, raw field with its folding and final CRLF) in order, and the body."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("a message needs CRLF line ends and an empty line after its header")
    fields: list[tuple[bytes, bytes]] = []
    for line in (head + b"\r\n").split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + line + b"\r\n")
        else:
            fields.append((line.partition(b":")[0].strip(), line + b"\r\n"))
    return fields, body


def relaxed_header(field: bytes) -> bytes:
    """RFC 6376 3.4.2: name in lower case, unfolded, runs of blanks as one space."""
    name, _, value = field.partition(b":")
    value = WSP.sub(b" ", FOLD.sub(b"", value.rstrip(b"\r\n"))).strip(b" ")
    return name.strip().lower() + b":" + value + b"\r\n"


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4: blanks reduced, trailing blanks and empty lines at the end dropped."""
    lines = [WSP.sub(b" ", line).rstrip(b" ") for line in body.split(b"\r\n")]
    while lines and lines[-1] == b"":
        lines.pop()
    return b"".join(line + b"\r\n" for line in lines)


def _fold(tags: list[bytes], start: int) -> bytes:
    out, width = b"", start
    for i, tag in enumerate(tags):
        piece = tag + (b";" if i < len(tags) - 1 else b"")
        if out and width + len(piece) + 1 > 76:
            out, width = out + b"\r\n\t", 1
        elif out:
            out, width = out + b" ", width + 1
        out, width = out + piece, width + len(piece)
    return out


def sign(
    raw: bytes,
    *,
    selector: str,
    domain: str,
    key_path: Path,
    headers: tuple[str, ...],
    now: int | None = None,
) -> bytes:
    """raw with a DKIM-Signature field in front, covering the listed headers present."""
    fields, body = _split(raw)
    body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
    # each time a name is listed, the next instance from the bottom is signed (RFC 6376
    # 5.4.2); listed once more than present ("over-signing"), the name also covers the
    # absence of another instance, so that nobody can add one (a second From or Subject)
    signed: list[bytes] = []
    names: list[bytes] = []
    used: dict[bytes, int] = {}
    for wanted in headers:
        key = wanted.lower().encode()
        instances = [f for n, f in reversed(fields) if n.lower() == key]
        n = used.get(key, 0)
        if n < len(instances):
            signed.append(instances[n])
        elif n == 0:
            continue  # not in the message at all: not listed
        used[key] = n + 1
        names.append(key)
    tags = [
        b"v=1",
        b"a=rsa-sha256",
        b"c=relaxed/relaxed",
        b"d=" + domain.encode(),
        b"s=" + selector.encode(),
        b"t=" + str(now if now is not None else int(time.time())).encode(),
        b"h=" + b":".join(names),
        b"bh=" + body_hash,
    ]
    unsigned = b"DKIM-Signature: " + _fold(tags, len(b"DKIM-Signature: ")) + b";\r\n\tb="
    data = b"".join(relaxed_header(f) for f in signed)
    data += relaxed_header(unsigned + b"\r\n").removesuffix(b"\r\n")
    signature = load_key(key_path).sign(data, padding.PKCS1v15(), hashes.SHA256())
    b64 = base64.b64encode(signature)
    folded = b"\r\n\t".join(b64[i : i + 70] for i in range(0, len(b64), 70))
    return unsigned + folded + b"\r\n" + raw
