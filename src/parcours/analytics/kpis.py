"""The six engagement KPIs, each defined once here as SQL over the snapshot's tables
(docs/kpis.md gives the formulas in words). The same SQL runs on DuckDB and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

from parcours.accounts.models import CHANNELS  # noqa: F401 (the channels, in display order)
from parcours.activities.service import CALL_CHANNELS

CALLS = "(" + ", ".join(f"'{c}'" for c in CALL_CHANNELS) + ")"  # as an SQL list
# touchpoints per HCP, as a distribution: the buckets of the histogram
BUCKETS = ((0, 0), (1, 1), (2, 2), (3, 5), (6, 10), (11, 20), (21, None))


@dataclass(frozen=True)
class Filters:
    start: date
    end: date  # inclusive
    country: str | None = None
    territory_id: int | None = None
    rep_id: int | None = None
    product_id: int | None = None
    segment: str | None = None
    tier: int | None = None
    specialty: str | None = None
    channel: str | None = None
    # the territories the user may see (None: all), set from the user's role, never a filter
    scope: tuple[int, ...] | None = None

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Filters:
        """The period of the same length just before."""
        return replace(
            self, start=self.start - timedelta(days=self.days), end=self.start - timedelta(days=1)
        )

    @property
    def grain(self) -> str:
        return "week" if self.days <= 92 else "month"


@dataclass
class Query:
    """SQL text with its parameters, for DuckDB ($name) or PostgreSQL (%(name)s)."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)


def _p(name: str, dialect: str) -> str:
    return f"${name}" if dialect == "duckdb" else f"%({name})s"


def ctes(f: Filters, dialect: str = "duckdb") -> Query:
    """The common table expressions every KPI starts from: hcp (HCPs in scope and filters),
    tp (their touchpoints in the period), reps (reps in scope with their team), tg (target
    list entries overlapping the period, with planned calls pro rata)."""
    p = lambda n: _p(n, dialect)  # noqa: E731
    pct = "'%'" if dialect == "duckdb" else "'%%'"  # psycopg reads % as a placeholder
    params: dict[str, Any] = {"start": f.start, "end": f.end}
    hcp_where = ["TRUE"]
    if f.country:
        hcp_where.append(f"h.country = {p('country')}")
        params["country"] = f.country
    if f.segment:
        hcp_where.append(f"h.segment = {p('segment')}")
        params["segment"] = f.segment
    if f.tier is not None:
        hcp_where.append(f"h.tier = {p('tier')}")
        params["tier"] = f.tier
    if f.specialty:
        hcp_where.append(f"h.specialty = {p('specialty')}")
        params["specialty"] = f.specialty
    terr_where = []  # territories whose HCPs and reps count
    if f.territory_id is not None:
        terr_where.append(
            "t.path LIKE (SELECT path FROM territories WHERE territory_id = "
            f"{p('territory_id')}) || {pct}"
        )
        params["territory_id"] = f.territory_id
    if f.rep_id is not None:  # what the rep sees: the HCPs of the rep's territories
        terr_where.append(
            "EXISTS (SELECT 1 FROM reps r2 JOIN territories t2 ON t2.territory_id = r2.territory_id"
            f" WHERE r2.user_id = {p('rep_id')} AND t.path LIKE t2.path || {pct})"
        )
        params["rep_id"] = f.rep_id
    if f.scope is not None:
        ids = ",".join(str(int(i)) for i in f.scope) or "NULL"
        terr_where.append(f"t.territory_id IN ({ids})")
    territories = "SELECT t.territory_id FROM territories t WHERE " + (
        " AND ".join(terr_where) or "TRUE"
    )
    if terr_where:
        hcp_where.append(
            "h.account_id IN (SELECT a.account_id FROM alignments a"
            " WHERE a.territory_id IN (SELECT territory_id FROM terr))"
        )
    hcp_restricted = len(hcp_where) > 1
    tp_where = [f"tp.day BETWEEN {p('start')} AND {p('end')}"]
    if f.country:
        tp_where.append(f"tp.country = {p('country')}")
    if f.channel:
        tp_where.append(f"tp.channel = {p('channel')}")
        params["channel"] = f.channel
    if f.product_id is not None:
        has = (
            f"list_contains(tp.product_ids, {p('product_id')})"
            if dialect == "duckdb"
            else f"{p('product_id')} = ANY(tp.product_ids)"
        )
        tp_where.append(has)
        params["product_id"] = f.product_id
    # touchpoints carry their country: a country alone needs no look-up of the HCPs
    if len(hcp_where) > (2 if f.country else 1):
        tp_where.append("tp.account_id IN (SELECT account_id FROM hcp)")
    rep_where = ["r.territory_id IN (SELECT territory_id FROM terr)"]
    if f.rep_id is not None:
        rep_where.append(f"r.user_id = {p('rep_id')}")
    if f.country:
        rep_where.append(f"t.country = {p('country')}")
    datediff = (
        (lambda a, b: f"date_diff('day', {a}, {b})")
        if dialect == "duckdb"
        else (lambda a, b: f"({b} - {a})")
    )
    ws, we = f"greatest(g.cycle_start, {p('start')})", f"least(g.cycle_end, {p('end')})"
    tg_where = [f"g.cycle_start <= {p('end')}", f"g.cycle_end >= {p('start')}"]
    if f.product_id is not None:
        tg_where.append(f"g.product_id = {p('product_id')}")
    if hcp_restricted:
        tg_where.append("g.account_id IN (SELECT account_id FROM hcp)")
    sql = f"""
    terr AS ({territories}),
    hcp AS (SELECT h.* FROM hcps h WHERE {" AND ".join(hcp_where)}),
    tp AS (SELECT tp.* FROM touchpoints tp WHERE {" AND ".join(tp_where)}),
    reps_in AS (
        SELECT r.user_id, min(t.parent_id) AS team_id
        FROM reps r JOIN territories t ON t.territory_id = r.territory_id
        WHERE {" AND ".join(rep_where)}
        GROUP BY r.user_id),
    tg AS (
        SELECT g.target_list_id, g.product_id, g.account_id, {ws} AS ws, {we} AS we,
               g.planned_calls * ({datediff(ws, we)} + 1) * 1.0
                   / ({datediff("g.cycle_start", "g.cycle_end")} + 1) AS planned
        FROM targets g WHERE {" AND ".join(tg_where)})"""
    return Query(sql, params)


def _with(f: Filters, body: str, dialect: str = "duckdb", extra: str = "") -> Query:
    base = ctes(f, dialect)
    return Query(f"WITH {base.sql}{extra}\n{body}", base.params)


# Three intermediate tables, computed once per period and read by several KPIs:
# per_hcp (touchpoints and two-way touchpoints per HCP and channel), rep_calls (calls and
# remote calls per caller and period bucket) and entries (target list entries with the
# calls made and credited).


def per_hcp(f: Filters, dialect: str = "duckdb") -> Query:
    return _with(
        f,
        """SELECT tp.account_id, tp.channel, count(*) AS n,
               max(CASE WHEN tp.two_way THEN 1 ELSE 0 END) AS engaged
        FROM tp
        WHERE tp.account_id NOT IN (SELECT account_id FROM hcps WHERE status = 'erased')
        GROUP BY 1, 2""",
        dialect,
    )


def flows(f: Filters, dialect: str = "duckdb") -> Query:
    """Touchpoints per caller, period bucket, channel, type and primary row, with the minutes
    of those that have a duration: one pass over the period read by rep_calls and by the
    touchpoint series."""
    return _with(
        f,
        f"""SELECT tp.owner_id, CAST(date_trunc('{f.grain}', tp.day) AS DATE) AS period,
               tp.channel, tp.kind, tp.is_primary, count(*) AS n,
               sum(tp.duration_min) AS minutes, count(tp.duration_min) AS timed
        FROM tp GROUP BY 1, 2, 3, 4, 5""",
        dialect,
    )


def rep_calls(f: Filters, dialect: str = "duckdb") -> Query:
    """Calls (counted once, on their primary row) and remote calls per caller and bucket."""
    return _with(
        f,
        f"""SELECT owner_id, period, sum(n) AS calls,
               sum(CASE WHEN channel = 'remote_detailing' THEN n ELSE 0 END) AS remote,
               sum(CASE WHEN channel = 'remote_detailing' THEN minutes END) AS remote_minutes,
               sum(CASE WHEN channel = 'remote_detailing' THEN timed ELSE 0 END) AS remote_timed
        FROM flows WHERE is_primary AND channel IN {CALLS}
        GROUP BY 1, 2""",
        dialect,
    )


def entries(f: Filters, dialect: str = "duckdb") -> Query:
    """Per target list entry: planned calls (pro rata of the cycle inside the period), calls
    made to the HCP inside it (for the list's product when it has one), and credited calls:
    made, up to planned, so that over-calling one HCP does not make up for another."""
    match = (
        "g.product_id IS NULL OR list_contains(c.product_ids, g.product_id)"
        if dialect == "duckdb"
        else "g.product_id IS NULL OR g.product_id = ANY(c.product_ids)"
    )
    first = "CAST(date_trunc('month', g.ws) AS DATE)"
    months = (
        f"CAST(unnest(generate_series({first}, g.we, INTERVAL 1 MONTH)) AS DATE)"
        if dialect == "duckdb"
        else f"CAST(generate_series({first}, g.we, INTERVAL '1 month') AS DATE)"
    )
    return _with(
        f,
        """SELECT g.target_list_id, g.account_id, g.planned, coalesce(m.made, 0) AS made,
               least(coalesce(m.made, 0), g.planned) AS credited
        FROM tg g LEFT JOIN made m
          ON m.target_list_id = g.target_list_id AND m.account_id = g.account_id""",
        dialect,
        # Each entry is spread over the months of its window and each call joined to the
        # entries of its HCP and month: the HCP alone matched every cycle of every list.
        f""",
    tgm AS (SELECT g.*, {months} AS month FROM tg g),
    made AS (
        SELECT g.target_list_id, g.account_id, count(*) AS made
        FROM tgm g JOIN tp c
          ON c.account_id = g.account_id
         AND CAST(date_trunc('month', c.day) AS DATE) = g.month
        WHERE c.day BETWEEN g.ws AND g.we AND c.channel IN {CALLS} AND ({match})
        GROUP BY 1, 2)""",
    )


# in this order: rep_calls reads flows
TEMP_TABLES = {
    "flows": flows,
    "per_hcp": per_hcp,
    "rep_calls": rep_calls,
    "entries": entries,
}


# --- 1. Touchpoints by channel and type over time ---------------------------------------------


def touchpoints_over_time(f: Filters, dialect: str = "duckdb") -> Query:
    """Touchpoints per period bucket, channel and type (reads flows)."""
    return _with(
        f,
        """SELECT period, channel, kind, sum(n) AS touchpoints
        FROM flows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""",
        dialect,
    )


# --- 2. Remote detailing adoption (reads rep_calls) ----------------------------------------------


def adoption_by_team(f: Filters, dialect: str = "duckdb") -> Query:
    """Per team (the parent territory of the reps' territories): reps in scope, reps with a
    remote call in the period, their calls and remote calls."""
    return _with(
        f,
        """SELECT r.team_id, count(*) AS reps,
               sum(CASE WHEN coalesce(c.remote, 0) > 0 THEN 1 ELSE 0 END) AS adopters,
               coalesce(sum(c.calls), 0) AS calls, coalesce(sum(c.remote), 0) AS remote
        FROM reps_in r
        LEFT JOIN (SELECT owner_id, sum(calls) AS calls, sum(remote) AS remote
                   FROM rep_calls GROUP BY 1) c ON c.owner_id = r.user_id
        GROUP BY 1 ORDER BY 1""",
        dialect,
    )


def adoption_over_time(f: Filters, dialect: str = "duckdb") -> Query:
    """Per period bucket: reps in scope with a remote call; calls and remote calls by anyone."""
    return _with(
        f,
        """SELECT c.period,
               count(DISTINCT CASE WHEN c.remote > 0
                                    AND c.owner_id IN (SELECT user_id FROM reps_in)
                                   THEN c.owner_id END) AS adopters,
               sum(c.calls) AS calls, sum(c.remote) AS remote
        FROM rep_calls c GROUP BY 1 ORDER BY 1""",
        dialect,
    )


def adoption_total(f: Filters, dialect: str = "duckdb") -> Query:
    return _with(
        f,
        """SELECT (SELECT count(*) FROM reps_in) AS reps,
               (SELECT count(DISTINCT owner_id) FROM rep_calls
                 WHERE remote > 0 AND owner_id IN (SELECT user_id FROM reps_in)) AS adopters,
               (SELECT coalesce(sum(calls), 0) FROM rep_calls) AS calls,
               (SELECT coalesce(sum(remote), 0) FROM rep_calls) AS remote""",
        dialect,
    )


# --- 3. Call plan attainment; 5b. frequency against plan per segment (read entries) --------------


def attainment_total(f: Filters, dialect: str = "duckdb") -> Query:
    return _with(
        f,
        """SELECT count(*) AS entries, count(DISTINCT account_id) AS targets,
               coalesce(sum(planned), 0) AS planned, coalesce(sum(made), 0) AS made,
               coalesce(sum(credited), 0) AS credited
        FROM entries""",
        dialect,
    )


def attainment_by_territory(f: Filters, dialect: str = "duckdb") -> Query:
    """Per territory the target HCP is aligned to (within scope): an HCP aligned to two
    territories counts in both rows, and once in the total."""
    return _with(
        f,
        """SELECT t.territory_id, count(*) AS entries, sum(e.planned) AS planned,
               sum(e.made) AS made, sum(e.credited) AS credited
        FROM entries e
        JOIN alignments a ON a.account_id = e.account_id
        JOIN territories t ON t.territory_id = a.territory_id
        WHERE t.territory_id IN (SELECT territory_id FROM terr)
        GROUP BY 1 ORDER BY 1""",
        dialect,
    )


def attainment_by_rep(f: Filters, dialect: str = "duckdb") -> Query:
    """Per rep in scope: the target entries of the HCPs aligned to the rep's territories."""
    return _with(
        f,
        """SELECT ra.user_id, sum(e.entries) AS entries, sum(e.planned) AS planned,
               sum(e.made) AS made, sum(e.credited) AS credited
        FROM (SELECT account_id, count(*) AS entries, sum(planned) AS planned,
                     sum(made) AS made, sum(credited) AS credited
              FROM entries GROUP BY 1) e
        JOIN (SELECT DISTINCT rt.user_id, a.account_id
              FROM reps rt JOIN alignments a ON a.territory_id = rt.territory_id
              WHERE rt.user_id IN (SELECT user_id FROM reps_in)
                AND a.account_id IN (SELECT account_id FROM entries)) ra
          ON ra.account_id = e.account_id
        GROUP BY 1 ORDER BY 1""",
        dialect,
    )


def frequency_by_segment(f: Filters, dialect: str = "duckdb") -> Query:
    return _with(
        f,
        """SELECT h.segment, count(DISTINCT e.account_id) AS targets, sum(e.planned) AS planned,
               sum(e.made) AS made
        FROM entries e JOIN hcps h ON h.account_id = e.account_id
        WHERE h.status <> 'erased'
        GROUP BY 1 ORDER BY 1""",
        dialect,
    )


# --- 4. HCPs engaged per channel, reach; 5. touchpoints per HCP per channel (read per_hcp) ------


def engaged_by_channel(f: Filters, dialect: str = "duckdb") -> Query:
    """Per channel, then all channels (channel NULL): HCPs touched, HCPs engaged two-way."""
    return _with(
        f,
        """SELECT channel, count(*) AS touched, sum(engaged) AS engaged FROM per_hcp GROUP BY 1
        UNION ALL
        SELECT NULL, count(*), coalesce(sum(engaged), 0)
        FROM (SELECT account_id, max(engaged) AS engaged FROM per_hcp GROUP BY 1) x
        ORDER BY 1 NULLS LAST""",
        dialect,
    )


def reach(f: Filters, dialect: str = "duckdb") -> Query:
    """Target HCPs (of the lists overlapping the period) and those with a touchpoint in it."""
    return _with(
        f,
        # a join, not IN (subquery): PostgreSQL rescans the subquery per row once per_hcp
        # outgrows work_mem (356 s at 100 M touchpoints)
        """SELECT count(*) AS targets, count(p.account_id) AS touched
        FROM (SELECT DISTINCT account_id FROM tg
              WHERE account_id NOT IN (SELECT account_id FROM hcps WHERE status = 'erased')) x
        LEFT JOIN (SELECT DISTINCT account_id FROM per_hcp) p ON p.account_id = x.account_id""",
        dialect,
    )


def per_hcp_histogram(f: Filters, dialect: str = "duckdb") -> Query:
    """How many HCPs had n touchpoints, per channel and for all channels (channel NULL)."""
    return _with(
        f,
        """SELECT channel, n, count(*) AS hcps FROM per_hcp GROUP BY 1, 2
        UNION ALL
        SELECT NULL, n, count(*) FROM (SELECT account_id, sum(n) AS n FROM per_hcp GROUP BY 1) x
        GROUP BY 1, 2
        ORDER BY 1 NULLS LAST, 2""",
        dialect,
    )


def population(f: Filters, dialect: str = "duckdb") -> Query:
    """HCPs in scope and filters, erased ones excepted: the denominator of per-HCP figures."""
    return _with(f, "SELECT count(*) AS hcps FROM hcp WHERE status <> 'erased'", dialect)


# --- 6. Engagement quality ----------------------------------------------------------------------


def quality(f: Filters, dialect: str = "duckdb") -> Query:
    """Distinct HCPs registered to or attending a webinar, and remote calls with their mean
    duration (reads rep_calls). Email and survey counts come from touchpoints_over_time."""
    return _with(
        f,
        """SELECT (SELECT count(*) FROM web) AS webinar_registered,
               (SELECT coalesce(sum(attended), 0) FROM web) AS webinar_attended,
               coalesce(sum(remote), 0) AS remote_calls,
               sum(remote_minutes) * 1.0 / nullif(sum(remote_timed), 0) AS remote_minutes
        FROM rep_calls""",
        dialect,
        """,
    web AS (
        SELECT account_id, max(CASE WHEN kind = 'attended' THEN 1 ELSE 0 END) AS attended
        FROM tp WHERE channel = 'webinar' AND kind IN ('registered', 'attended')
        GROUP BY 1)""",
    )
