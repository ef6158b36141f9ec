"""What a dashboard shows, built from the figures: the cards on top with their change against
the previous period, and for each chart its data (read by Chart.js) and the same as a table."""

from __future__ import annotations

from collections.abc import Callable

from parcours.analytics.kpis import CHANNELS
from parcours.analytics.service import Dashboard

# (key, kind: count | share | number, KPI number) — the figures on the cards
CARDS = (
    ("touchpoints", "count", 1),
    ("adoption", "share", 2),
    ("remote_share", "share", 2),
    ("attainment", "share", 3),
    ("engaged", "count", 4),
    ("reach", "share", 4),
    ("per_hcp_mean", "number", 5),
    ("open_rate", "share", 6),
    ("click_rate", "share", 6),
    ("attendance_rate", "share", 6),
    ("remote_minutes", "number", 6),
    ("survey_rate", "share", 6),
    ("journey_conversion", "share", 6),
)


def cards(board: Dashboard) -> list[dict]:
    cur, prev = board.current.headline, board.previous.headline
    out = []
    for key, kind, kpi in CARDS:
        value, before = cur.get(key), prev.get(key)
        delta = None
        if value is not None and before is not None:
            delta = (value - before) * 100 if kind == "share" else value - before
            # a change that shows as 0 once rounded for display is no change
            if abs(delta) < (0.5 if kind == "count" else 0.05):
                delta = 0
        out.append(
            {
                "key": key,
                "kind": kind,
                "kpi": kpi,
                "value": value,
                "previous": before,
                "delta": delta,
            }
        )
    return out


def charts(board: Dashboard, t: Callable[..., str]) -> dict:
    tables = board.current.tables
    names = board.names
    out: dict[str, dict] = {}

    # 1. touchpoints over time, stacked by channel; and the channel mix
    series = tables.get("touchpoints", [])
    periods = sorted({r["period"] for r in series})
    per = {(r["period"], r["channel"]): 0 for r in series}
    mix: dict[str, int] = {}
    for r in series:
        per[(r["period"], r["channel"])] += r["touchpoints"]
        mix[r["channel"]] = mix.get(r["channel"], 0) + r["touchpoints"]
    used = [c for c in CHANNELS if c in mix]
    out["touchpoints"] = {
        "type": "bar",
        "stacked": True,
        "labels": [p.isoformat() for p in periods],
        "datasets": [
            {
                "label": t(f"channel.{c}"),
                "channel": c,
                "data": [per.get((p, c), 0) for p in periods],
            }
            for c in used
        ],
        "rows": [{"period": p, "cells": [per.get((p, c), 0) for c in used]} for p in periods],
        "columns": used,
    }
    kinds = {}
    for r in series:
        kinds[(r["channel"], r["kind"])] = (
            kinds.get((r["channel"], r["kind"]), 0) + r["touchpoints"]
        )
    out["mix"] = {
        "type": "doughnut",
        "labels": [t(f"channel.{c}") for c in used],
        "datasets": [
            {"label": t("analytics.chart.mix"), "data": [mix[c] for c in used], "channels": used}
        ],
        "rows": [
            {"channel": c, "kind": k, "touchpoints": n}
            for (c, k), n in sorted(
                kinds.items(), key=lambda kv: (CHANNELS.index(kv[0][0]), kv[0][1] or "")
            )
        ],
        "total": sum(mix.values()),
    }

    # 2. remote detailing adoption over time
    adoption = tables.get("adoption_over_time", [])
    reps = board.current.headline.get("reps") or 0
    out["adoption"] = {
        "type": "line",
        "percent": True,
        "labels": [r["period"].isoformat() for r in adoption],
        "datasets": [
            {
                "label": t("analytics.card.adoption"),
                "data": [round(100 * r["adopters"] / reps, 1) if reps else None for r in adoption],
            },
            {
                "label": t("analytics.card.remote_share"),
                "data": [
                    round(100 * r["remote"] / r["calls"], 1) if r["calls"] else None
                    for r in adoption
                ],
            },
        ],
        "rows": adoption,
        "teams": [
            {**r, "name": names["territories"].get(r["team_id"], "—")}
            for r in tables.get("adoption_by_team", [])
        ],
    }

    # 3. call plan attainment by territory and by rep
    by_terr = [
        {**r, "name": names["territories"].get(r["territory_id"], str(r["territory_id"]))}
        for r in tables.get("attainment_by_territory", [])
    ]
    out["attainment"] = {
        "type": "bar",
        "horizontal": True,
        "percent": True,
        "labels": [r["name"] for r in by_terr],
        "datasets": [
            {
                "label": t("analytics.card.attainment"),
                "data": [
                    round(100 * r["credited"] / r["planned"], 1) if r["planned"] else None
                    for r in by_terr
                ],
            }
        ],
        "rows": by_terr,
        "reps": [
            {**r, "name": names["users"].get(r["user_id"], str(r["user_id"]))}
            for r in tables.get("attainment_by_rep", [])
        ],
    }

    # 4. HCPs engaged per channel
    engaged = [r for r in tables.get("engaged", []) if r["channel"] is not None]
    engaged.sort(key=lambda r: CHANNELS.index(r["channel"]) if r["channel"] in CHANNELS else 99)
    out["engaged"] = {
        "type": "bar",
        "labels": [t(f"channel.{r['channel']}") for r in engaged],
        "datasets": [
            {"label": t("analytics.col.touched"), "data": [r["touched"] for r in engaged]},
            {"label": t("analytics.col.engaged"), "data": [r["engaged"] for r in engaged]},
        ],
        "rows": engaged,
        "all": next((r for r in tables.get("engaged", []) if r["channel"] is None), None),
    }

    # 5. touchpoints per HCP: the distribution over every channel, and per channel
    dist = tables.get("distribution", [])
    everyone = next((r for r in dist if r["channel"] is None), None)
    out["distribution"] = {
        "type": "bar",
        "labels": [_bucket(b) for b in (everyone or {"buckets": []})["buckets"]],
        "datasets": [
            {
                "label": t("analytics.col.hcps"),
                "data": [b["hcps"] for b in (everyone or {"buckets": []})["buckets"]],
            }
        ],
        "rows": [r for r in dist if r["channel"] is not None] + ([everyone] if everyone else []),
        "buckets": [_bucket(b) for b in (everyone or {"buckets": []})["buckets"]],
    }

    # 5b. frequency against plan per segment
    seg = tables.get("frequency_by_segment", [])
    out["segments"] = {
        "type": "bar",
        "labels": [r["segment"] or "—" for r in seg],
        "datasets": [
            {
                "label": t("analytics.col.planned_per_hcp"),
                "data": [round(r["planned"] / r["targets"], 2) if r["targets"] else 0 for r in seg],
            },
            {
                "label": t("analytics.col.made_per_hcp"),
                "data": [round(r["made"] / r["targets"], 2) if r["targets"] else 0 for r in seg],
            },
        ],
        "rows": seg,
    }
    return out


def _bucket(b: dict) -> str:
    if b["hi"] is None:
        return f"{b['lo']}+"
    return str(b["lo"]) if b["lo"] == b["hi"] else f"{b['lo']}–{b['hi']}"


def chart_data(specs: dict) -> dict:
    """Only what the browser needs to draw (no table rows, no dates)."""
    keep = ("type", "stacked", "horizontal", "percent", "labels", "datasets")
    return {k: {x: v[x] for x in keep if x in v} for k, v in specs.items()}
