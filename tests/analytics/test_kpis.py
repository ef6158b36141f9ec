"""The six KPIs over the hand-made data set (analytics_world.py), each figure worked out by
hand from its listing: the period, filters, a rep's scope and the previous period."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from parcours.accounts.service import territory_scope
from parcours.analytics.figures import distribution
from parcours.analytics.kpis import Filters

from analytics_world import FEB


def by(rows: list[dict], key: str) -> dict:
    return {r[key]: r for r in rows}


def test_headline_figures_for_february(figures_for):
    h = figures_for(FEB).headline

    # 1. Touchpoints (submitted only, by local day; the erased HCP's count):
    #    calls: c7 1, c1 1, c9 1, c2 3 (h1 h2 h5), c5 1, c10 2 (the HCO is not an HCP),
    #    c3 1, c4 1 = 11; emails 5 sent + 2 opened + 1 clicked = 8; webinar 3 registered +
    #    2 attended = 5; survey 2 sent + 1 completed = 3; web 1.
    #    Not: c6 and c8 (January), c11 (March), the planned and the saved call.
    assert h["touchpoints"] == 11 + 8 + 5 + 3 + 1 == 28

    # 2. Remote adoption: active reps aligned somewhere: rep_n1, rep_n2, rep_gb (rep_old is
    #    inactive, the manager is no rep). Adopters: rep_n1 (c2), rep_n2 (c3); rep_gb's
    #    remote call c6 is in January. Calls once each: c7 c1 c9 c2 c5 c10 c3 c4 = 8
    #    (the manager's c5 included), of which remote c2 and c3.
    assert h["reps"] == 3
    assert h["adopters"] == 2
    assert h["adoption"] == pytest.approx(2 / 3)
    assert h["calls"] == 8
    assert h["remote_calls"] == 2
    assert h["remote_share"] == pytest.approx(2 / 8)

    # 3. Attainment. L1 (P1, all February): h1 planned 2, made c7 c1 c2 = 3 → credited 2;
    #    h2 planned 3, made c2 c5 and c4 (P1 only by its amendment) = 3 → 3; h5 (erased,
    #    still counted) planned 1, made c9 c2 → 1; g1 planned 2, made 0 (c10 is P2) → 0.
    #    L2 (no product, 15 Feb–15 Mar: 15 of 30 days in February): h3 4 × 15/30 = 2,
    #    made c3 (16 Feb, no_contact still a call) → 1; h4 2 × 15/30 = 1, made 0.
    #    L3 (Q4 2023) does not overlap.
    assert h["planned"] == pytest.approx(2 + 3 + 1 + 2 + 4 * 15 / 30 + 2 * 15 / 30)
    assert h["credited"] == pytest.approx(2 + 3 + 1 + 0 + 1 + 0)
    assert h["attainment"] == pytest.approx(7 / 11)

    # 4. Engaged, two-way: h1 (c1), h2 (c4), g1 and g2 (c10). h3 only had c3, amended to
    #    no_contact, an email sent, a webinar registration, a survey sent. h5 is erased.
    assert h["touched"] == 5  # h1 h2 h3 g1 g2
    assert h["engaged"] == 4
    # reach: targets h1 h2 g1 h3 h4 (h5 erased), of which h4 not touched
    assert h["targets"] == 5
    assert h["targets_touched"] == 4
    assert h["reach"] == pytest.approx(4 / 5)

    # 5. Per HCP, the never-touched h4 included, the erased h5 not:
    #    h1 8 (c7 c1 c2, sent opened clicked, registered attended), h2 9 (c2 c5 c4, sent
    #    opened, registered, survey sent completed, web), h3 4, g1 3, g2 1, h4 0.
    assert h["population"] == 6
    assert h["per_hcp_mean"] == pytest.approx((8 + 9 + 4 + 3 + 1 + 0) / 6)
    assert h["per_hcp_p50"] == 3  # 0 1 [3] 4 8 9: the 3rd of 6

    # 6. Quality (the erased h5's email counts): opened 2 / sent 5, clicked 1 / 5;
    #    webinar attended {h1 g1} / registered or attended {h1 h2 h3 g1}; remote minutes on
    #    c2 (20) and c3 (amended twice: 45); surveys completed 1 / sent 2.
    assert h["open_rate"] == pytest.approx(2 / 5)
    assert h["click_rate"] == pytest.approx(1 / 5)
    assert h["attendance_rate"] == pytest.approx(2 / 4)
    assert h["remote_minutes"] == pytest.approx((20 + 45) / 2)
    assert h["survey_rate"] == pytest.approx(1 / 2)
    assert h["journey_conversion"] is None


def test_tables_for_february(figures_for, world):
    fig = figures_for(FEB)
    t, ter, u = fig.tables, world.t, world.users

    kinds: dict[tuple, int] = {}
    for row in t["touchpoints"]:
        kinds[row["channel"], row["kind"]] = (
            kinds.get((row["channel"], row["kind"]), 0) + row["touchpoints"]
        )
    assert kinds == {
        ("field_visit", None): 6,  # c1 c9 c5 c4, c10 × 2
        ("phone", None): 1,  # c7
        ("remote_detailing", None): 4,  # c2 × 3, c3
        ("email", "sent"): 5,
        ("email", "opened"): 2,
        ("email", "clicked"): 1,
        ("webinar", "registered"): 3,
        ("webinar", "attended"): 2,
        ("survey", "sent"): 2,
        ("survey", "completed"): 1,
        ("web", "visit"): 1,
    }
    # weeks start on Monday: c7, on 1 February in Paris, is in the week of 29 January
    first = [r for r in t["touchpoints"] if r["period"] == date(2024, 1, 29)]
    assert [(r["channel"], r["touchpoints"]) for r in first] == [("phone", 1)]

    # the team is the parent of the reps' territories: Nord (rep_n1, rep_n2), London
    teams = by(t["adoption_by_team"], "team_id")
    assert teams == {
        ter["north"].id: {
            "team_id": ter["north"].id,
            "reps": 2,
            "adopters": 2,
            "calls": 6,  # rep_n1 c7 c1 c9 c2, rep_n2 c3 c4
            "remote": 2,
        },
        ter["london"].id: {
            "team_id": ter["london"].id,
            "reps": 1,
            "adopters": 0,
            "calls": 1,  # c10
            "remote": 0,
        },
    }
    weeks = by(t["adoption_over_time"], "period")
    assert {w: (r["calls"], r["remote"], r["adopters"]) for w, r in weeks.items()} == {
        date(2024, 1, 29): (1, 0, 0),  # c7
        date(2024, 2, 5): (2, 0, 0),  # c1 c9
        date(2024, 2, 12): (4, 2, 2),  # c2 c5 c10 c3
        date(2024, 2, 19): (1, 0, 0),  # c4
    }

    # h2 is aligned to north1 and north2: in both rows, once in the headline
    terr = {
        k: (r["entries"], r["planned"], r["credited"])
        for k, r in by(t["attainment_by_territory"], "territory_id").items()
    }
    assert terr == {
        ter["north1"].id: (3, 2 + 3 + 1, 2 + 3 + 1),  # h1 h2 h5
        ter["north2"].id: (2, 3 + 2, 3 + 1),  # h2 h3
        ter["south1"].id: (1, 1, 0),  # h4
        ter["gb1"].id: (1, 2, 0),  # g1
    }
    assert sum(v[1] for v in terr.values()) == 14 != fig.headline["planned"] == 11
    reps = {
        k: (r["planned"], r["credited"]) for k, r in by(t["attainment_by_rep"], "user_id").items()
    }
    assert reps == {
        u["rep_n1"].id: (6, 6),
        u["rep_n2"].id: (5, 4),
        u["rep_gb"].id: (2, 0),
    }
    segments = {
        r["segment"]: (r["targets"], r["planned"], r["made"]) for r in t["frequency_by_segment"]
    }
    assert segments == {
        # h1 h2 g1; the erased h5 (1 planned, 2 made) counts in attainment, not here
        world.seg_a.code: (3, 2 + 3 + 2, 3 + 3 + 0),
        world.seg_b.code: (2, 3, 1),  # h3 h4
    }

    engaged = {r["channel"]: (r["touched"], r["engaged"]) for r in t["engaged"]}
    assert engaged == {
        "field_visit": (4, 4),  # h1 h2 g1 g2 (h5 erased)
        "phone": (1, 1),
        "remote_detailing": (3, 2),  # h1 h2 h3, h3's call amended to no_contact
        "email": (4, 1),  # sent to h1 h2 h3 g1, clicked by h1
        "webinar": (4, 2),  # h1 h2 h3 g1; attended h1 g1
        "survey": (2, 1),
        "web": (1, 1),
        None: (5, 4),
    }

    dist = by(t["distribution"], "channel")
    everyone = dist[None]
    assert (everyone["hcps"], everyone["touched"], everyone["touchpoints"]) == (6, 5, 25)
    assert (everyone["p50"], everyone["p90"]) == (3, 9)  # 0 1 3 4 8 9: 3rd and 6th
    assert [b["hcps"] for b in everyone["buckets"]] == [1, 1, 0, 2, 2, 0, 0]
    # email: h1 3, h2 2, h3 1, g1 1 and two HCPs with none: 0 0 1 1 2 3
    email = dist["email"]
    assert (email["hcps"], email["touchpoints"], email["p50"], email["p90"]) == (6, 7, 1, 3)
    assert email["mean"] == pytest.approx(7 / 6)

    (q,) = t["quality"]
    assert (q["emails_sent"], q["emails_opened"], q["emails_clicked"]) == (5, 2, 1)
    assert (q["webinar_registered"], q["webinar_attended"]) == (4, 2)
    assert (q["surveys_sent"], q["surveys_completed"], q["remote_calls"]) == (2, 1, 2)


def test_headline_only_gives_the_same_figures(figures_for):
    assert figures_for(FEB, full=False).headline == figures_for(FEB).headline


def test_previous_period(figures_for):
    prev = FEB.previous()
    assert (prev.start, prev.end) == (date(2024, 1, 3), date(2024, 1, 31))
    h = figures_for(prev).headline
    # c6 (20 Jan, remote, g1) and c8 (31 Jan 23:30 UTC, still 31 Jan in London); c7 at the
    # same instant is already 1 February in Paris.
    assert h["touchpoints"] == 2
    assert (h["calls"], h["remote_calls"], h["adopters"], h["reps"]) == (2, 1, 1, 3)
    assert h["adoption"] == pytest.approx(1 / 3)
    assert h["remote_share"] == pytest.approx(1 / 2)
    assert h["remote_minutes"] == pytest.approx(30)
    assert (h["planned"], h["attainment"]) == (0, None)  # no list overlaps January 3–31
    assert (h["targets"], h["reach"]) == (0, None)
    assert (h["touched"], h["engaged"], h["population"]) == (1, 1, 6)
    assert (h["open_rate"], h["attendance_rate"], h["survey_rate"]) == (None, None, None)


def test_country_filter(figures_for):
    h = figures_for(replace(FEB, country="GB")).headline
    # g1: c10, email sent, webinar attended; g2: c10
    assert h["touchpoints"] == 4
    assert (h["reps"], h["adopters"], h["calls"], h["remote_calls"]) == (1, 0, 1, 0)
    assert h["remote_share"] == 0
    assert (h["planned"], h["credited"], h["attainment"]) == (2, 0, 0)  # g1 on L1
    assert (h["population"], h["touched"], h["engaged"], h["reach"]) == (2, 2, 2, 1)
    assert h["open_rate"] == 0  # 0 opened of 1 sent
    assert h["attendance_rate"] == 1  # g1 attended without registering
    assert h["remote_minutes"] is None


def test_territory_filter_takes_the_subtree(figures_for, world):
    north = figures_for(replace(FEB, territory_id=world.t["north"].id)).headline
    # HCPs aligned below Nord: h1 8, h2 9, h3 4, h5 (erased) 3 touchpoints
    assert north["touchpoints"] == 8 + 9 + 4 + 3
    # calls whose primary HCP is there: c7 c1 c9 c2 c5 c3 c4
    assert (north["reps"], north["adopters"], north["calls"], north["remote_calls"]) == (
        2,
        2,
        7,
        2,
    )
    assert north["planned"] == pytest.approx(2 + 3 + 1 + 2)  # h1 h2 h5 on L1, h3 on L2
    assert north["attainment"] == pytest.approx((2 + 3 + 1 + 1) / 8)
    assert (north["population"], north["touched"], north["engaged"]) == (3, 3, 2)
    assert north["reach"] == 1  # h1 h2 h3

    leaf = figures_for(replace(FEB, territory_id=world.t["north1"].id)).headline
    assert leaf["touchpoints"] == 8 + 9 + 3  # h1 h2 h5
    # c7 c1 c9 c2 (rep_n1), c5 (manager) and c4 (rep_n2) to h2: calls by anyone
    assert (leaf["reps"], leaf["adopters"], leaf["calls"], leaf["remote_calls"]) == (1, 1, 6, 1)
    assert leaf["attainment"] == pytest.approx((2 + 3 + 1) / (2 + 3 + 1))

    south2 = figures_for(replace(FEB, territory_id=world.t["south2"].id)).headline
    assert (south2["touchpoints"], south2["reps"], south2["population"]) == (0, 0, 0)
    assert (south2["adoption"], south2["attainment"], south2["per_hcp_mean"]) == (None,) * 3


def test_rep_filter(figures_for, world):
    """Filtering on a rep shows what the rep sees: the HCPs of the rep's territories, whoever
    touched them; the adoption figures are the rep's own."""
    h = figures_for(replace(FEB, rep_id=world.users["rep_n2"].id)).headline
    # north2 holds h3 and h2 (aligned to north1 too). h2: c2 (a row of rep_n1's group call),
    # c5, c4, email sent and opened, webinar registered, survey sent and completed, web = 9;
    # h3: c3, email sent, webinar registered, survey sent = 4
    assert h["touchpoints"] == 9 + 4
    # calls counted on their primary row: c5 and c4 (h2), c3 (h3); c2's primary is h1
    assert (h["reps"], h["adopters"], h["calls"], h["remote_calls"]) == (1, 1, 3, 1)
    assert h["remote_minutes"] == pytest.approx(45)  # c3, as amended
    assert h["population"] == 2
    # L1 h2: 3 planned, made c2 c5 c4 (P1 after its amendment) -> 3; L2 h3: 4 × 15/30 = 2
    # planned, made c3 -> 1
    assert h["planned"] == pytest.approx(3 + 2)
    assert h["attainment"] == pytest.approx((3 + 1) / (3 + 2))
    # the same as the rep's own row in the per-rep table
    reps = {r["user_id"]: r for r in figures_for(FEB).tables["attainment_by_rep"]}
    mine = reps[world.users["rep_n2"].id]
    assert mine["credited"] / mine["planned"] == pytest.approx(h["attainment"])
    # someone who is not a rep has no territory of reps: nothing
    mgr = figures_for(replace(FEB, rep_id=world.users["manager"].id)).headline
    assert (mgr["touchpoints"], mgr["calls"], mgr["reps"], mgr["adoption"]) == (0, 0, 0, None)


def test_product_filter(figures_for, world):
    p1 = figures_for(replace(FEB, product_id=world.p1.id)).headline
    # touchpoints about P1: c7 c1 c9, c2 × 3, c5, and c4 by its amendment
    assert p1["touchpoints"] == 8
    assert (p1["calls"], p1["remote_calls"], p1["adopters"]) == (6, 1, 1)
    assert p1["planned"] == pytest.approx(2 + 3 + 1 + 2)  # L1 only
    assert p1["attainment"] == pytest.approx((2 + 3 + 1 + 0) / 8)

    p2 = figures_for(replace(FEB, product_id=world.p2.id)).headline
    # c3, c4 (P1 and P2), c10 × 2; no list about P2 overlaps February
    assert p2["touchpoints"] == 4
    assert (p2["calls"], p2["remote_calls"], p2["adopters"]) == (3, 1, 1)
    assert (p2["planned"], p2["attainment"], p2["targets"]) == (0, None, 0)


def test_segment_tier_and_specialty_filters(figures_for, world):
    a = figures_for(replace(FEB, segment=world.seg_a.code)).headline
    # h1 8, h2 9, h5 3, g1 3 touchpoints; h5 out of the population
    assert a["touchpoints"] == 8 + 9 + 3 + 3
    assert a["population"] == 3
    assert a["attainment"] == pytest.approx((2 + 3 + 1 + 0) / (2 + 3 + 1 + 2))
    assert a["per_hcp_mean"] == pytest.approx((8 + 9 + 3) / 3)

    tier2 = figures_for(replace(FEB, tier=2)).headline  # segment B: h3 4, h4 0, g2 1
    assert (tier2["touchpoints"], tier2["population"], tier2["touched"]) == (5, 3, 2)
    assert tier2["attainment"] == pytest.approx(1 / (2 + 1))

    onco = figures_for(replace(FEB, specialty="Oncology")).headline  # h3
    assert (onco["touchpoints"], onco["population"], onco["engaged"]) == (4, 1, 0)


def test_channel_filter(figures_for):
    h = figures_for(replace(FEB, channel="email")).headline
    assert h["touchpoints"] == 8
    assert (h["calls"], h["remote_share"], h["adopters"]) == (0, None, 0)
    # no call in the channel: nothing made against the plan
    assert (h["planned"], h["credited"], h["attainment"]) == (11, 0, 0)
    assert (h["touched"], h["engaged"]) == (4, 1)  # h1 h2 h3 g1, clicked by h1
    assert h["per_hcp_mean"] == pytest.approx(7 / 6)  # h5's sent email not counted
    assert (h["open_rate"], h["click_rate"]) == (pytest.approx(2 / 5), pytest.approx(1 / 5))

    remote = figures_for(replace(FEB, channel="remote_detailing")).headline
    assert (remote["touchpoints"], remote["calls"], remote["remote_share"]) == (4, 2, 1)


def test_scope_of_a_rep_leaves_out_other_territories(session, figures_for, world):
    scope = territory_scope(session, world.users["rep_n2"])
    assert scope == [world.t["north2"].id]
    f = replace(FEB, scope=tuple(scope))
    fig = figures_for(f)
    h = fig.headline
    # HCPs aligned to north2: h2 (9 touchpoints) and h3 (4)
    assert h["touchpoints"] == 9 + 4
    # calls whose primary HCP is there: c3, c4, c5 (c2's primary, h1, is in north1)
    assert (h["reps"], h["adopters"], h["calls"], h["remote_calls"]) == (1, 1, 3, 1)
    assert h["planned"] == pytest.approx(3 + 2)
    assert h["attainment"] == pytest.approx((3 + 1) / (3 + 2))
    assert (h["population"], h["touched"], h["engaged"], h["reach"]) == (2, 2, 1, 1)
    assert h["open_rate"] == pytest.approx(1 / 2)  # sent to h2 h3, opened by h2
    assert h["attendance_rate"] == 0  # h2 h3 registered, nobody attended
    assert h["remote_minutes"] == pytest.approx(45)
    # h2 is also aligned to north1, which is out of scope: one row only
    assert [r["territory_id"] for r in fig.tables["attainment_by_territory"]] == [
        world.t["north2"].id
    ]
    assert [r["user_id"] for r in fig.tables["attainment_by_rep"]] == [world.users["rep_n2"].id]
    assert [r["team_id"] for r in fig.tables["adoption_by_team"]] == [world.t["north"].id]
    channels = {(r["channel"], r["kind"]) for r in fig.tables["touchpoints"]}
    assert ("webinar", "attended") not in channels  # only h1 and g1 attended

    # a territory filter outside the scope shows nothing, not the other territory
    gb = figures_for(replace(f, territory_id=world.t["gb1"].id)).headline
    assert (gb["touchpoints"], gb["reps"], gb["population"], gb["targets"]) == (0, 0, 0, 0)
    # an empty scope (a user aligned nowhere) sees nothing at all
    none = figures_for(replace(FEB, scope=())).headline
    assert (none["touchpoints"], none["calls"], none["population"]) == (0, 0, 0)


def test_filters_period_arithmetic():
    f = Filters(date(2024, 3, 1), date(2024, 3, 31))
    assert f.days == 31 and f.grain == "week"
    assert (f.previous().start, f.previous().end) == (date(2024, 1, 30), date(2024, 2, 29))
    year = Filters(date(2023, 1, 1), date(2023, 12, 31))
    assert year.grain == "month"
    assert year.previous().days == 365


def test_distribution_counts_hcps_without_touchpoints():
    # 10 HCPs: 4 with none, then 1 1 2 3 5 12
    d = distribution({1: 2, 2: 1, 3: 1, 5: 1, 12: 1}, 10)
    assert (d["hcps"], d["touched"], d["touchpoints"]) == (10, 6, 1 + 1 + 2 + 3 + 5 + 12)
    assert d["mean"] == pytest.approx(24 / 10)
    # nearest rank: p50 is the 5th of 0 0 0 0 1 1 2 3 5 12, p90 the 9th
    assert (d["p50"], d["p90"]) == (1, 5)
    assert [b["hcps"] for b in d["buckets"]] == [4, 2, 1, 2, 0, 1, 0]
    assert distribution({}, 0) == {
        "hcps": 0,
        "touched": 0,
        "touchpoints": 0,
        "mean": None,
        "p50": None,
        "p90": None,
        "buckets": [{**b, "hcps": 0} for b in d["buckets"]],
    }
    # one HCP: every percentile is its count
    assert distribution({7: 1}, 1)["p50"] == distribution({7: 1}, 1)["p90"] == 7
