"""Dashboards by role: filters read and checked, the user's scope applied to every figure, the
list behind a figure, and exports."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from parcours.accounts.models import Account, Product, Segment, Territory, UserTerritory
from parcours.accounts.service import display_name, readable, territory_scope
from parcours.activities.models import Activity
from parcours.analytics import figures, kpis
from parcours.analytics.engine import engine
from parcours.analytics.kpis import CHANNELS, Filters
from parcours.core.errors import Forbidden, Invalid, NotFound
from parcours.core.models import Role, User
from parcours.web.pages import is_id

READERS = (Role.admin, Role.manager, Role.marketing, Role.rep)
DEFAULT_DAYS = 90
MAX_DAYS = 3 * 366
DRILL_LIMIT = 500
# the query string a dashboard, its exports, its lists and the API read their filters from
FILTERS = (
    "start",
    "end",
    "country",
    "territory",
    "rep",
    "product",
    "segment",
    "tier",
    "specialty",
    "channel",
)
DRILLS = ("touched", "engaged", "untouched_targets", "bucket", "touchpoints")


def _today() -> date:
    """The site's calendar day: a default period ends today where the lab works, not in UTC."""
    from parcours.activities.service import local_today

    return local_today()


def view_of(user: User) -> str:
    """Which dashboard the user gets: the rep's own, the manager's team, marketing's channels."""
    if user.role not in READERS:
        raise Forbidden("Dashboards are for reps, managers, marketing and admins.")
    return {"rep": "rep", "manager": "manager", "marketing": "marketing"}.get(user.role, "admin")


def _date(raw: str, name: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise Invalid("Give a date as YYYY-MM-DD.", field=name) from None


def _int(raw: str, name: str, message: str) -> int:
    if not is_id(raw):
        raise Invalid(message, field=name)
    return int(raw)


def raw_filters(query: Mapping[str, str]) -> dict[str, str]:
    """The filter values of a query string, "" for those not given."""
    return {k: query.get(k, "") for k in FILTERS}


def filters(session: Session, user: User, raw: dict[str, str]) -> Filters:
    """Filters from a query string, checked; the user's territory scope is always applied."""
    view_of(user)
    raw = {k: (v or "").strip() for k, v in raw.items()}
    today = _today()
    end = _date(raw["end"], "end") if raw.get("end") else today
    start = (
        _date(raw["start"], "start") if raw.get("start") else end - timedelta(days=DEFAULT_DAYS - 1)
    )
    if start > end:
        raise Invalid("The period ends before it starts.", field="end")
    if (end - start).days + 1 > MAX_DAYS:
        raise Invalid("A period is at most three years.", field="start")
    scope = territory_scope(session, user)
    country = raw.get("country") or None
    if country is not None:
        country = country.upper()
        if len(country) != 2 or not country.isalpha():
            raise Invalid("A country is a two-letter code, such as FR.", field="country")
    territory_id = None
    if raw.get("territory"):
        territory_id = _int(raw["territory"], "territory", "Choose a territory from the list.")
        if session.get(Territory, territory_id) is None or (
            scope is not None and territory_id not in scope
        ):
            raise Invalid("This territory is not one you can see.", field="territory")
    rep_id = None
    if raw.get("rep"):
        rep_id = _int(raw["rep"], "rep", "Choose a rep from the list.")
        if rep_id not in {r.id for r in reps(session, user)}:
            raise Invalid("This rep is not one you can see.", field="rep")
    product_id = None
    if raw.get("product"):
        product_id = _int(raw["product"], "product", "Choose a product from the list.")
        if session.get(Product, product_id) is None:
            raise Invalid("This product does not exist.", field="product")
    segment = raw.get("segment") or None
    if segment is not None and not session.scalar(
        select(Segment.id).where(Segment.code == segment)
    ):
        raise Invalid("This segment does not exist.", field="segment")
    tier = None
    if raw.get("tier"):
        if raw["tier"] not in ("1", "2", "3", "4", "5"):
            raise Invalid("A tier is a number from 1 to 5.", field="tier")
        tier = int(raw["tier"])
    specialty = raw.get("specialty") or None
    if specialty is not None and len(specialty) > 80:
        raise Invalid("A specialty is at most 80 characters.", field="specialty")
    channel = raw.get("channel") or None
    if channel is not None and channel not in CHANNELS:
        raise Invalid("Choose a channel from the list.", field="channel")
    return Filters(
        start=start,
        end=end,
        country=country,
        territory_id=territory_id,
        rep_id=rep_id,
        product_id=product_id,
        segment=segment,
        tier=tier,
        specialty=specialty,
        channel=channel,
        scope=None if scope is None else tuple(scope),
    )


def reps(session: Session, user: User) -> list[User]:
    """The reps whose figures the user may see: a rep sees only themself."""
    if user.role == Role.rep:
        return [user]
    q = select(User).where(User.role == Role.rep).order_by(User.full_name)
    scope = territory_scope(session, user)
    if scope is not None:
        q = q.where(
            User.id.in_(select(UserTerritory.user_id).where(UserTerritory.territory_id.in_(scope)))
        )
    return list(session.scalars(q))


def choices(session: Session, user: User) -> dict:
    """What the filter menus offer this user."""
    scope = territory_scope(session, user)
    terr = select(Territory).order_by(Territory.path)
    if scope is not None:
        terr = terr.where(Territory.id.in_(scope or [-1]))
    territories = list(session.scalars(terr))
    return {
        "territories": territories,
        "countries": sorted({t.country for t in territories}),
        "reps": reps(session, user) if user.role != Role.rep else [],
        "products": list(session.scalars(select(Product).order_by(Product.name))),
        "segments": list(session.scalars(select(Segment).order_by(Segment.code))),
        "specialties": _specialties(session),
        "channels": CHANNELS,
    }


# The specialties read every HCP row (0.13 to 0.2 s at 100,000 HCPs, most of a cached page):
# kept per process for a few minutes, a new specialty shows in the menu within that time.
SPECIALTIES_TTL_S = 300.0
_SPECIALTIES: dict[str, tuple[float, list[str]]] = {}


def _specialties(session: Session) -> list[str]:
    key = str(session.get_bind().engine.url)
    hit = _SPECIALTIES.get(key)
    if hit is not None and hit[0] > time.monotonic():
        return hit[1]
    found = sorted(
        s
        for s in session.scalars(select(Account.specialty).where(Account.kind == "hcp").distinct())
        if s
    )
    _SPECIALTIES[key] = (time.monotonic() + SPECIALTIES_TTL_S, found)
    return found


@dataclass
class Dashboard:
    view: str
    filters: Filters
    current: figures.Figures
    previous: figures.Figures
    snapshot: dict
    names: dict


# A snapshot generation never changes once written: figures computed for one (generation,
# filters, scope) are kept for the page's exports and the next visitor with the same view.
_CACHE: OrderedDict[tuple, tuple[figures.Figures, figures.Figures]] = OrderedDict()
_CACHE_SIZE = 32
_CACHE_LOCK = threading.Lock()


def compute(f: Filters) -> tuple[figures.Figures, figures.Figures, dict]:
    """The figures for the period and, in brief, for the previous one (cached per snapshot)."""
    eng = engine()
    cur = eng.cursor()  # re-points the views at the latest snapshot first
    key = (str(eng.where), eng.generation, f)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is not None:
            _CACHE.move_to_end(key)
    if hit is None:
        try:
            run = figures.Runner(cur)
            hit = (figures.compute(run, f), figures.compute(run, f.previous(), full=False))
        finally:
            cur.close()
        with _CACHE_LOCK:
            _CACHE[key] = hit
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
    else:
        cur.close()
    return hit[0], hit[1], eng.manifest or {}


def dashboard(session: Session, user: User, f: Filters) -> Dashboard:
    view = view_of(user)
    current, previous, manifest = compute(f)
    return Dashboard(view, f, current, previous, manifest, _names(session, current))


def _names(session: Session, fig: figures.Figures) -> dict:
    """Names for the ids in the tables: territories, teams and reps."""
    t_ids = {r["territory_id"] for r in fig.tables.get("attainment_by_territory", [])}
    t_ids |= {r["team_id"] for r in fig.tables.get("adoption_by_team", []) if r["team_id"]}
    u_ids = {r["user_id"] for r in fig.tables.get("attainment_by_rep", [])}
    territories = dict(
        session.execute(select(Territory.id, Territory.name).where(Territory.id.in_(t_ids))).all()
    )
    users = dict(session.execute(select(User.id, User.full_name).where(User.id.in_(u_ids))).all())
    return {"territories": territories, "users": users}


# --- the list behind a figure --------------------------------------------------------------------


def drill(
    session: Session,
    user: User,
    f: Filters,
    what: str,
    *,
    channel: str | None = None,
    kind: str | None = None,
    lo: int | None = None,
    hi: int | None = None,
    period: date | None = None,
) -> dict:
    """HCPs (or touchpoints) behind a figure, readable by the user, at most DRILL_LIMIT."""
    view_of(user)
    if what not in DRILLS:
        raise Invalid("Choose what to list.", field="what")
    if channel is not None and channel not in CHANNELS:
        raise Invalid("Choose a channel from the list.", field="channel")
    q = kpis.ctes(f)
    params = dict(q.params)
    conds = []
    if channel:
        conds.append("tp.channel = $d_channel")
        params["d_channel"] = channel
    if kind:
        conds.append("tp.kind = $d_kind")
        params["d_kind"] = kind
    if period is not None:
        grain = f.grain
        conds.append(f"CAST(date_trunc('{grain}', tp.day) AS DATE) = $d_period")
        params["d_period"] = period
    where = " AND ".join(conds) or "TRUE"
    erased = "SELECT account_id FROM hcps WHERE status = 'erased'"
    if what == "touchpoints":
        body = f"""SELECT tp.activity_id, tp.account_id, tp.day FROM tp WHERE {where}
                   ORDER BY tp.day DESC, tp.activity_id DESC"""
    elif what in ("touched", "engaged", "bucket"):
        having = []
        if what == "engaged":
            having.append("max(CASE WHEN tp.two_way THEN 1 ELSE 0 END) = 1")
        if what == "bucket":
            if lo is None or lo < 1:
                raise Invalid("A bucket starts at 1 touchpoint or more.", field="lo")
            having.append(f"count(*) >= {int(lo)}")
            if hi is not None:
                having.append(f"count(*) <= {int(hi)}")
        body = f"""SELECT tp.account_id, count(*) AS n FROM tp
                   WHERE {where} AND tp.account_id NOT IN ({erased})
                   GROUP BY 1 {"HAVING " + " AND ".join(having) if having else ""}
                   ORDER BY n DESC, tp.account_id"""
    else:  # target HCPs without a touchpoint in the period
        body = f"""SELECT DISTINCT g.account_id FROM tg g
                   WHERE g.account_id NOT IN (SELECT account_id FROM tp WHERE {where})
                     AND g.account_id NOT IN ({erased})
                   ORDER BY 1"""
    cur = engine().cursor()
    try:
        total = cur.execute(f"WITH {q.sql} SELECT count(*) FROM ({body}) x", params).fetchone()[0]
        rows = cur.execute(f"WITH {q.sql} {body} LIMIT {DRILL_LIMIT}", params).fetchall()
    finally:
        cur.close()
    if what == "touchpoints":
        return {"what": what, "total": total, "touchpoints": _activities(session, user, rows)}
    return {"what": what, "total": total, "hcps": _hcps(session, user, rows)}


def _hcps(session: Session, user: User, rows: list[tuple]) -> list[dict]:
    ids = [r[0] for r in rows]
    counts = {r[0]: (r[1] if len(r) > 1 else None) for r in rows}
    found = {
        a.id: a
        for a in session.scalars(
            select(Account).where(Account.id.in_(ids), readable(session, user))
        )
    }
    # the snapshot may be a minute behind an alignment change: drop who the user cannot read now
    return [
        {"account": found[i], "name": display_name(found[i]), "n": counts[i]}
        for i in ids
        if i in found
    ]


def _activities(session: Session, user: User, rows: list[tuple]) -> list[dict]:
    acts = {
        a.id: a
        for a in session.scalars(select(Activity).where(Activity.id.in_({r[0] for r in rows})))
    }
    accounts = {
        a.id: a
        for a in session.scalars(
            select(Account).where(Account.id.in_({r[1] for r in rows}), readable(session, user))
        )
    }
    out = []
    for activity_id, account_id, day in rows:
        if activity_id in acts and account_id in accounts:
            acc = accounts[account_id]
            out.append(
                {
                    "activity": acts[activity_id],
                    "account": acc,
                    "name": display_name(acc),
                    "day": day,
                }
            )
    return out


# --- exports -------------------------------------------------------------------------------------

TABLES = (
    "headline",
    "touchpoints",
    "adoption_by_team",
    "adoption_over_time",
    "attainment_by_territory",
    "attainment_by_rep",
    "frequency_by_segment",
    "engaged",
    "distribution",
    "quality",
)


def table_rows(board: Dashboard, name: str) -> list[dict]:
    if name not in TABLES:
        raise NotFound(f"No table named {name}.")
    if name == "headline":
        cur, prev = board.current.headline, board.previous.headline
        return [{"figure": k, "value": cur[k], "previous": prev.get(k)} for k in cur]
    rows = board.current.tables.get(name, [])
    if name == "distribution":
        flat = []
        for r in rows:
            for b in r["buckets"]:
                flat.append(
                    {
                        "channel": r["channel"] or "all",
                        "from": b["lo"],
                        "to": b["hi"],
                        "hcps": b["hcps"],
                        "mean": r["mean"],
                        "p50": r["p50"],
                        "p90": r["p90"],
                    }
                )
        return flat
    return rows


def to_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    if rows:
        w = csv.DictWriter(out, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({k: _cell(v) for k, v in r.items()})
    return out.getvalue()


def _cell(v):
    if isinstance(v, float):
        return round(v, 6)
    return v


def to_parquet(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    clean = [
        {
            k: (float(v) if hasattr(v, "as_integer_ratio") and not isinstance(v, int) else v)
            for k, v in r.items()
        }
        for r in rows
    ]
    table = pa.Table.from_pylist(clean) if clean else pa.table({})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()
