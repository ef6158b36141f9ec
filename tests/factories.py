"""Plain typed factories that build test scenarios on a session."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from parcours.accounts.models import (
    Account,
    AccountTerritory,
    Address,
    Product,
    Segment,
    Territory,
    UserTerritory,
)
from parcours.accounts.service import clear_scope_cache
from parcours.accounts.text import search_key
from parcours.core.models import User
from parcours.core.security import hash_password

PASSWORD = "correct-horse-battery"
ROOT = Path(__file__).resolve().parents[1]
_seq = itertools.count(1)


@lru_cache
def _hash(password: str) -> str:
    return hash_password(password)


def create_user(
    session: Session,
    role: str = "rep",
    *,
    email: str | None = None,
    password: str = PASSWORD,
    language: str = "en",
    territories: list[Territory] = (),
    **over,
) -> User:
    n = next(_seq)
    user = User(
        email=email or f"{role}{n}@example.test",
        full_name=over.pop("full_name", f"{role.title()} {n}"),
        role=role,
        language=language,
        password_hash=_hash(password),
        **over,
    )
    session.add(user)
    session.flush()
    for t in territories:
        session.add(UserTerritory(user_id=user.id, territory_id=t.id))
    session.flush()
    clear_scope_cache()
    return user


def create_territory(
    session: Session, name: str, level: str, parent: Territory | None = None, country: str = "FR"
) -> Territory:
    n = next(_seq)
    t = Territory(
        code=f"T{n}",
        name=name,
        level=level,
        parent_id=parent.id if parent else None,
        country=parent.country if parent else country,
    )
    session.add(t)
    session.flush()
    t.path = f"{parent.path if parent else '/'}{t.id}/"
    session.flush()
    return t


def create_territory_tree(session: Session) -> dict[str, Territory]:
    """France → two regions → two territories each: north1, north2, south1, south2."""
    fr = create_territory(session, "France", "country")
    north = create_territory(session, "Nord", "region", fr)
    south = create_territory(session, "Sud", "region", fr)
    return {
        "fr": fr,
        "north": north,
        "south": south,
        "north1": create_territory(session, "Lille", "territory", north),
        "north2": create_territory(session, "Amiens", "territory", north),
        "south1": create_territory(session, "Marseille", "territory", south),
        "south2": create_territory(session, "Nice", "territory", south),
    }


def create_segment(session: Session, code: str = "A", tier: int = 1) -> Segment:
    seg = Segment(code=f"{code}{next(_seq)}", name=f"Segment {code}", tier=tier)
    session.add(seg)
    session.flush()
    return seg


def create_product(session: Session, name: str | None = None) -> Product:
    n = next(_seq)
    p = Product(code=f"P{n}", name=name or f"Product {n}", therapeutic_area="Vaccines")
    session.add(p)
    session.flush()
    return p


def create_hcp(
    session: Session,
    territory: Territory | None = None,
    *,
    last_name: str | None = None,
    first_name: str = "Claire",
    specialty: str = "Cardiology",
    city: str = "Lille",
    **over,
) -> Account:
    n = next(_seq)
    last = last_name or f"Martin{n}"
    acc = Account(
        kind="hcp",
        title="Dr",
        first_name=first_name,
        last_name=last,
        specialty=specialty,
        profession="physician",
        emails=[f"hcp{n}@example.test"],
        phones=[],
        country=over.pop("country", "FR"),
        city=city,
        city_key=search_key(city),
        search_name=search_key(last, first_name),
        **over,
    )
    session.add(acc)
    session.flush()
    session.add(
        Address(
            account_id=acc.id,
            line1=f"{n} rue de la Paix",
            postal_code="59000",
            city=city,
            country=acc.country,
            is_primary=True,
        )
    )
    if territory is not None:
        session.add(AccountTerritory(account_id=acc.id, territory_id=territory.id))
    session.flush()
    return acc


def create_hco(
    session: Session, territory: Territory | None = None, name: str = "CHU Lille", **over
) -> Account:
    acc = Account(
        kind="hco",
        name=name,
        hco_type="hospital",
        country="FR",
        city="Lille",
        city_key="lille",
        search_name=search_key(name),
        emails=[],
        phones=[],
        **over,
    )
    session.add(acc)
    session.flush()
    if territory is not None:
        session.add(AccountTerritory(account_id=acc.id, territory_id=territory.id))
        session.flush()
    return acc


def migrate(url: str) -> None:
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("sqlalchemy.url", url)
    command.upgrade(cfg, "head")


def yesterday():
    return date.today() - timedelta(days=1)


def api_headers(client: TestClient, user: User, password: str = PASSWORD) -> dict[str, str]:
    resp = client.post("/api/v1/auth/token", json={"email": user.email, "password": password})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def login(client: TestClient, email: str, password: str = PASSWORD):
    """Log in through the login page as a browser would; returns the response."""
    import re

    page = client.get("/login")
    match = re.search(r'name="_csrf" value="([^"]+)"', page.text)
    token = match.group(1) if match else ""
    return client.post(
        "/login",
        data={"email": email, "password": password, "_csrf": token},
        follow_redirects=False,
    )


def consent_to_remote_meetings(session: Session, *account_ids: int, status: str = "opted_in"):
    """Remote-meeting consent for these HCPs, signed in person a minute ago."""
    from datetime import UTC, datetime, timedelta

    from parcours.consent.models import ConsentRecord

    for account_id in account_ids:
        session.add(
            ConsentRecord(
                account_id=account_id,
                channel="remote_meeting",
                status=status,
                source="signed_in_person",
                captured_at=datetime.now(UTC) - timedelta(minutes=1),
                proof="signed form",
            )
        )
    session.flush()


def free_port() -> int:
    """A local TCP port nobody listens on (yet)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rsa_key_files(path: Path) -> str:
    """A 2048-bit RSA private key written at path (PEM, as DKIM signers read it); the
    base64 DER public key, as a DKIM DNS record publishes it."""
    import base64
    import subprocess

    subprocess.run(
        ["openssl", "genrsa", "-traditional", "-out", str(path), "2048"],
        check=True,
        capture_output=True,
    )
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(path), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return base64.b64encode(der).decode()
