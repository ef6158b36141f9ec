"""Runs the KPI queries on DuckDB (or PostgreSQL, the baseline) and turns their rows into the
figures a dashboard shows: ratios, distributions, the comparison with the previous period."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from parcours.analytics import kpis
from parcours.analytics.kpis import BUCKETS, Filters, Query


class Runner:
    """Executes queries on one DB-API cursor (a DuckDB cursor or a psycopg connection)."""

    def __init__(self, con: Any, dialect: str = "duckdb"):
        self.con = con
        self.dialect = dialect

    def rows(self, q: Query) -> list[dict]:
        cur = self.con.execute(q.sql, q.params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def one(self, q: Query) -> dict:
        return self.rows(q)[0]

    def temp(self, name: str, q: Query) -> None:
        self.con.execute(f"DROP TABLE IF EXISTS {name}")
        # the WITH clause goes inside: CREATE TABLE x AS WITH ... SELECT ...
        self.con.execute(f"CREATE TEMP TABLE {name} AS {q.sql}", q.params)

    def query(self, fn: Callable[[Filters, str], Query], f: Filters) -> list[dict]:
        return self.rows(fn(f, self.dialect))


def ratio(a: float | None, b: float | None) -> float | None:
    return None if not b or a is None else a / b


def distribution(counts: dict[int, int], population: int) -> dict:
    """Histogram buckets, mean, median and 90th percentile of touchpoints per HCP, the HCPs
    without one included (nearest rank: the smallest n that at least p% of HCPs do not pass)."""
    touched = sum(counts.values())
    zeros = max(population - touched, 0)
    full = {0: zeros, **{n: c for n, c in counts.items() if n}}
    total_hcps = sum(full.values())
    buckets = []
    for lo, hi in BUCKETS:
        buckets.append(
            {
                "lo": lo,
                "hi": hi,
                "hcps": sum(c for n, c in full.items() if n >= lo and (hi is None or n <= hi)),
            }
        )

    def pct(num: int, den: int) -> int | None:
        if not total_hcps:
            return None
        rank = max(1, -(-num * total_hcps // den))  # ceil(num/den × N), in integers
        seen = 0
        for n in sorted(full):
            seen += full[n]
            if seen >= rank:
                return n
        return None

    touchpoints = sum(n * c for n, c in full.items())
    return {
        "hcps": total_hcps,
        "touched": touched,
        "touchpoints": touchpoints,
        "mean": ratio(touchpoints, total_hcps),
        "p50": pct(1, 2),
        "p90": pct(9, 10),
        "buckets": buckets,
    }


@dataclass
class Figures:
    filters: Filters
    headline: dict[str, float | int | None] = field(default_factory=dict)
    tables: dict[str, list[dict]] = field(default_factory=dict)


def compute(run: Runner, f: Filters, *, full: bool = True) -> Figures:
    """All six KPIs for the filters' period (full=False: the headline figures only)."""
    for name, fn in kpis.TEMP_TABLES.items():
        run.temp(name, fn(f, run.dialect))
    out = Figures(f)
    h = out.headline
    t = out.tables

    # 1. touchpoints
    series = run.query(kpis.touchpoints_over_time, f)
    h["touchpoints"] = sum(r["touchpoints"] for r in series)
    if full:
        t["touchpoints"] = series
    kinds: dict[tuple[str, str | None], int] = {}
    for r in series:
        kinds[(r["channel"], r["kind"])] = (
            kinds.get((r["channel"], r["kind"]), 0) + r["touchpoints"]
        )

    # 2. remote detailing adoption
    a = run.one(kpis.adoption_total(f, run.dialect))
    h["reps"], h["adopters"] = a["reps"], a["adopters"]
    h["calls"], h["remote_calls"] = int(a["calls"] or 0), int(a["remote"] or 0)
    h["adoption"] = ratio(a["adopters"], a["reps"])
    h["remote_share"] = ratio(a["remote"], a["calls"])

    # 3. call plan attainment
    at = run.one(kpis.attainment_total(f, run.dialect))
    h["planned"] = float(at["planned"] or 0)
    h["credited"] = float(at["credited"] or 0)
    h["attainment"] = ratio(h["credited"], h["planned"])

    # 4. engaged and reach
    engaged = run.query(kpis.engaged_by_channel, f)
    everyone = next((r for r in engaged if r["channel"] is None), {"touched": 0, "engaged": 0})
    h["engaged"] = int(everyone["engaged"] or 0)
    h["touched"] = int(everyone["touched"] or 0)
    r = run.one(kpis.reach(f, run.dialect))
    h["targets"], h["targets_touched"] = r["targets"], int(r["touched"] or 0)
    h["reach"] = ratio(h["targets_touched"], h["targets"])

    # 5. touchpoints per HCP
    pop = run.one(kpis.population(f, run.dialect))["hcps"]
    h["population"] = pop
    hist = run.query(kpis.per_hcp_histogram, f)
    per_channel: dict[str | None, dict[int, int]] = {}
    for row in hist:
        per_channel.setdefault(row["channel"], {})[int(row["n"])] = int(row["hcps"])
    dist_all = distribution(per_channel.get(None, {}), pop)
    h["per_hcp_mean"] = dist_all["mean"]
    h["per_hcp_p50"] = dist_all["p50"]

    # 6. quality
    q = {
        "emails_sent": kinds.get(("email", "sent"), 0),
        "emails_opened": kinds.get(("email", "opened"), 0),
        "emails_clicked": kinds.get(("email", "clicked"), 0),
        **run.one(kpis.quality(f, run.dialect)),
        "surveys_sent": kinds.get(("survey", "sent"), 0),
        "surveys_completed": kinds.get(("survey", "completed"), 0),
    }
    h["open_rate"] = ratio(q["emails_opened"], q["emails_sent"])
    h["click_rate"] = ratio(q["emails_clicked"], q["emails_sent"])
    h["attendance_rate"] = ratio(q["webinar_attended"], q["webinar_registered"])
    h["remote_minutes"] = float(q["remote_minutes"]) if q["remote_minutes"] is not None else None
    h["survey_rate"] = ratio(q["surveys_completed"], q["surveys_sent"])
    h["journey_conversion"] = None  # journeys are not built yet: nothing to convert

    if not full:
        return out
    t["adoption_by_team"] = run.query(kpis.adoption_by_team, f)
    t["adoption_over_time"] = run.query(kpis.adoption_over_time, f)
    t["attainment_by_territory"] = run.query(kpis.attainment_by_territory, f)
    t["attainment_by_rep"] = run.query(kpis.attainment_by_rep, f)
    t["frequency_by_segment"] = run.query(kpis.frequency_by_segment, f)
    t["engaged"] = engaged
    t["distribution"] = [
        {"channel": ch, **distribution(counts, pop)}
        for ch, counts in sorted(per_channel.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
    ]
    t["quality"] = [q]
    return out
