"""The analytics tests' data set, small and hand-made so that every KPI can be worked out by
hand, and helpers that snapshot a test's uncommitted rows and compute the figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from parcours.accounts.models import AccountTerritory, TargetList, TargetListEntry
from parcours.activities.models import Activity, Amendment, Attendee
from parcours.analytics import figures, snapshot
from parcours.analytics.engine import Engine
from parcours.analytics.kpis import Filters
from parcours.consent.gdpr import erase_hcp

from factories import (
    create_hco,
    create_hcp,
    create_product,
    create_segment,
    create_territory,
    create_territory_tree,
    create_user,
)

# The period most tests look at: February 2024 (29 days, so the previous period is
# 3–31 January). France is UTC+1 then, Great Britain UTC+0.
FEB = Filters(date(2024, 2, 1), date(2024, 2, 29))


def at(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2024, month, day, hour, minute, tzinfo=UTC)


def touch(
    session: Session,
    owner,
    hcps: list,
    channel: str,
    when: datetime,
    *,
    kind: str | None = None,
    duration: int | None = None,
    outcome: str | None = None,
    products: tuple = (),
    status: str = "submitted",
) -> Activity:
    """A touchpoint written as it was on `when` (created, updated and submitted then), so an
    incremental refresh run now does not read it again."""
    act = Activity(
        channel=channel,
        kind=kind,
        status=status,
        owner_id=owner.id if owner else None,
        account_id=hcps[0].id,
        start_at=when,
        duration_min=duration,
        outcome=outcome,
        product_ids=[p.id for p in products],
        key_messages=[],
        submitted_at=when if status == "submitted" else None,
        created_at=when,
        updated_at=when,
    )
    session.add(act)
    session.flush()
    for hcp in hcps:
        session.add(Attendee(activity_id=act.id, account_id=hcp.id, start_at=when, channel=channel))
    session.flush()
    return act


def amend(session: Session, act: Activity, author, changes: dict, when: datetime) -> Amendment:
    row = Amendment(
        activity_id=act.id, author_id=author.id, reason="fix", changes=changes, created_at=when
    )
    session.add(row)
    session.flush()
    return row


@dataclass
class World:
    t: dict  # territories by short name
    users: dict  # rep_n1, rep_n2, rep_gb, rep_old (inactive), manager, admin
    h: dict  # HCPs: h1..h5 in France (h5 erased), g1, g2 in Great Britain
    p1: object
    p2: object
    seg_a: object
    seg_b: object
    calls: dict


def build_world(session: Session) -> World:
    """The data set. Every figure the tests expect is derived from this listing.

    Territories: France → Nord (north1, north2), Sud (south1, south2); United Kingdom →
    London → gb1. Reps: rep_n1 (north1), rep_n2 (north2), rep_gb (gb1), rep_old (south1,
    inactive); the manager (Nord region) is a caller but not a rep.

    HCPs (segment, alignment): h1 A north1; h2 A north1 AND north2; h3 B north2 (Oncology);
    h4 B south1 (never touched); h5 A north1 (erased); g1 A gb1; g2 B gb1.

    Calls in February, at 10:00 UTC; a touchpoint's day is the HCP's (Paris UTC+1, London
    UTC+0); 30 minutes and positive unless said:
      c7   1 Feb  rep_n1   phone        h1                      P1  (31 Jan 23:30 UTC)
      c1   5 Feb  rep_n1   field_visit  h1                      P1
      c9   9 Feb  rep_n1   field_visit  h5 (erased)             P1
      c2  12 Feb  rep_n1   remote       h1 (primary), h2, h5    P1  20 min, neutral
      c5  14 Feb  manager  field_visit  h2                      P1
      c10 15 Feb  rep_gb   field_visit  HCO (primary), g2, g1   P2
      c3  16 Feb  rep_n2   remote       h3                      P2  15 min; amended to 30
                                                                    min, then 45 no_contact
      c4  20 Feb  rep_n2   field_visit  h2                      P2, amended to P1 + P2
    Not counted in February: c6 20 Jan rep_gb remote g1 30 min, c8 31 Jan 23:30 UTC rep_gb
    phone g1 (still 31 Jan in London), c11 5 Mar rep_n2 field h3, a planned and a saved
    call to h1 in February.
    Other touchpoints in February: email sent h1 h2 h3 g1 h5, opened h1 h2, clicked h1;
    webinar registered h1 h2 h3, attended h1 g1; survey sent h2 h3, completed h2; web h2.

    Target lists: L1 P1, cycle February (29 days): h1 2, h2 3, h5 1, g1 2 planned calls.
    L2 no product, 15 Feb–15 Mar (30 days, 15 in February): h3 4, h4 2. L3 P2, Q4 2023: h1 5.
    """
    t = create_territory_tree(session)
    gb = create_territory(session, "United Kingdom", "country", country="GB")
    t["gb"] = gb
    t["london"] = create_territory(session, "London", "region", gb)
    t["gb1"] = create_territory(session, "Camden", "territory", t["london"])
    users = {
        "rep_n1": create_user(session, "rep", territories=[t["north1"]]),
        "rep_n2": create_user(session, "rep", territories=[t["north2"]]),
        "rep_gb": create_user(session, "rep", territories=[t["gb1"]]),
        "rep_old": create_user(session, "rep", territories=[t["south1"]], is_active=False),
        "manager": create_user(session, "manager", territories=[t["north"]]),
        "admin": create_user(session, "admin"),
    }
    p1, p2 = create_product(session), create_product(session)
    seg_a, seg_b = create_segment(session, "A", 1), create_segment(session, "B", 2)
    h = {
        "h1": create_hcp(session, t["north1"], segment_id=seg_a.id),
        "h2": create_hcp(session, t["north1"], segment_id=seg_a.id),
        "h3": create_hcp(session, t["north2"], segment_id=seg_b.id, specialty="Oncology"),
        "h4": create_hcp(session, t["south1"], segment_id=seg_b.id),
        "h5": create_hcp(session, t["north1"], segment_id=seg_a.id),
        "g1": create_hcp(session, t["gb1"], segment_id=seg_a.id, country="GB", city="London"),
        "g2": create_hcp(session, t["gb1"], segment_id=seg_b.id, country="GB", city="London"),
    }
    session.add(AccountTerritory(account_id=h["h2"].id, territory_id=t["north2"].id))
    hco = create_hco(session, t["gb1"], name="Royal Free")
    session.flush()

    n1, n2, gbr, mgr = users["rep_n1"], users["rep_n2"], users["rep_gb"], users["manager"]
    h1, h2, h3, h4, h5, g1, g2 = (h[k] for k in ("h1", "h2", "h3", "h4", "h5", "g1", "g2"))
    call = dict(outcome="positive", duration=30)
    c = {
        "c7": touch(session, n1, [h1], "phone", at(1, 31, 23, 30), products=(p1,), **call),
        "c1": touch(session, n1, [h1], "field_visit", at(2, 5), products=(p1,), **call),
        "c9": touch(session, n1, [h5], "field_visit", at(2, 9), products=(p1,), **call),
        "c2": touch(
            session,
            n1,
            [h1, h2, h5],
            "remote_detailing",
            at(2, 12),
            products=(p1,),
            outcome="neutral",
            duration=20,
        ),
        "c5": touch(session, mgr, [h2], "field_visit", at(2, 14), products=(p1,), **call),
        "c10": touch(session, gbr, [hco, g2, g1], "field_visit", at(2, 15), products=(p2,), **call),
        "c3": touch(
            session,
            n2,
            [h3],
            "remote_detailing",
            at(2, 16),
            products=(p2,),
            outcome="positive",
            duration=15,
        ),
        "c4": touch(session, n2, [h2], "field_visit", at(2, 20), products=(p2,), **call),
        "c6": touch(session, gbr, [g1], "remote_detailing", at(1, 20), products=(p1,), **call),
        "c8": touch(session, gbr, [g1], "phone", at(1, 31, 23, 30), products=(p1,), **call),
        "c11": touch(session, n2, [h3], "field_visit", at(3, 5), products=(p2,), **call),
        "planned": touch(session, n1, [h1], "field_visit", at(2, 22), status="planned"),
        "saved": touch(
            session, n1, [h1], "field_visit", at(2, 23), status="saved", products=(p1,), **call
        ),
    }
    amend(session, c["c3"], n2, {"duration_min": 30}, at(2, 17))
    amend(session, c["c3"], n2, {"duration_min": 45, "outcome": "no_contact"}, at(2, 18))
    amend(session, c["c4"], n2, {"product_ids": [p1.id, p2.id]}, at(2, 21))

    for who in (h1, h2, h3, g1, h5):
        touch(session, n1, [who], "email", at(2, 10), kind="sent")
    for who in (h1, h2):
        touch(session, n1, [who], "email", at(2, 10, 11), kind="opened")
    touch(session, n1, [h1], "email", at(2, 10, 12), kind="clicked")
    for who in (h1, h2, h3):
        touch(session, mgr, [who], "webinar", at(2, 19), kind="registered")
    for who in (h1, g1):
        touch(session, mgr, [who], "webinar", at(2, 21), kind="attended")
    for who in (h2, h3):
        touch(session, None, [who], "survey", at(2, 22), kind="sent")
    touch(session, None, [h2], "survey", at(2, 23), kind="completed")
    touch(session, None, [h2], "web", at(2, 23), kind="visit")

    lists = [
        (p1, date(2024, 2, 1), date(2024, 2, 29), {h1: 2, h2: 3, h5: 1, g1: 2}),
        (None, date(2024, 2, 15), date(2024, 3, 15), {h3: 4, h4: 2}),
        (p2, date(2023, 10, 1), date(2023, 12, 31), {h1: 5}),
    ]
    for n, (product, start, end, planned) in enumerate(lists, 1):
        tl = TargetList(
            name=f"L{n}",
            product_id=product.id if product else None,
            cycle_start=start,
            cycle_end=end,
        )
        session.add(tl)
        session.flush()
        for hcp, calls in planned.items():
            session.add(
                TargetListEntry(target_list_id=tl.id, account_id=hcp.id, planned_calls=calls)
            )
    session.flush()
    erase_hcp(session, users["admin"], h5.id, "GDPR request 42")
    session.flush()
    return World(t, users, h, p1, p2, seg_a, seg_b, c)


def refresh(session: Session, folder: Path, **kw) -> snapshot.Result | None:
    """Snapshot what the test wrote so far (uncommitted: the refresh reads on its connection)."""
    session.flush()
    return snapshot.refresh(session.connection(), folder, **kw)


def compute(folder: Path, f: Filters, **kw) -> figures.Figures:
    return figures.compute(figures.Runner(Engine(folder).cursor()), f, **kw)
