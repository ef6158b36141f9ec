"""The Parquet snapshot: what a touchpoint row says, incremental refreshes (new calls,
amendments, dimensions), an empty database, and one refresh at a time."""

from __future__ import annotations

import fcntl
import threading
from dataclasses import replace

import pytest

from parcours.accounts.models import AccountTerritory
from parcours.accounts.service import align_account, unalign
from parcours.activities.service import amend_activity, create_activity, submit_activity
from parcours.analytics import snapshot
from parcours.analytics.engine import Engine
from parcours.analytics.figures import Runner, compute
from parcours.core.users import update_user

from analytics_world import FEB, at, refresh


def rows(engine: Engine, activity_id: int) -> list[dict]:
    cur = engine.cursor()
    cur.execute(
        "SELECT * FROM touchpoints WHERE activity_id = ? ORDER BY account_id", [activity_id]
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def headline(engine: Engine, f=FEB) -> dict:
    return compute(Runner(engine.cursor()), f, full=False).headline


def test_touchpoint_rows(session, world, analytics_dir):
    result = refresh(session, analytics_dir)
    assert result.full and result.months == ["2024-01", "2024-02", "2024-03"]
    assert sorted(result.dimensions) == sorted(snapshot.DIMENSIONS)
    manifest = snapshot.read_manifest(analytics_dir)
    assert manifest["generation"] == 1
    assert manifest["dialect"] == session.connection().dialect.name
    eng = Engine(analytics_dir)
    c, h = world.calls, world.h

    # 31 January 23:30 UTC: 1 February in Paris, still 31 January in London
    (c7,) = rows(eng, c["c7"].id)
    assert (str(c7["day"]), c7["country"]) == ("2024-02-01", "FR")
    (c8,) = rows(eng, c["c8"].id)
    assert (str(c8["day"]), c8["country"]) == ("2024-01-31", "GB")
    month = eng.cursor().execute(
        "SELECT count(*) FROM read_parquet(?) WHERE activity_id = ?",
        [str(analytics_dir / manifest["months"]["2024-02"]), c["c7"].id],
    )
    assert month.fetchone()[0] == 1

    # a group call: one row per HCP present, counted once on its primary HCP's row
    c2 = rows(eng, c["c2"].id)
    assert [(r["account_id"], r["is_primary"]) for r in c2] == [
        (h["h1"].id, True),
        (h["h2"].id, False),
        (h["h5"].id, False),
    ]
    # primary account an HCO: no row for it, the lowest HCP id is primary
    c10 = rows(eng, c["c10"].id)
    assert [(r["account_id"], r["is_primary"]) for r in c10] == [
        (h["g1"].id, True),
        (h["g2"].id, False),
    ]
    assert h["g1"].id < h["g2"].id and c["c10"].account_id not in (h["g1"].id, h["g2"].id)

    # amendments applied, the latest last; the submitted call itself is unchanged
    (c3,) = rows(eng, c["c3"].id)
    assert (c3["duration_min"], c3["outcome"], c3["two_way"]) == (45, "no_contact", False)
    assert (c["c3"].duration_min, c["c3"].outcome) == (15, "positive")
    (c4,) = rows(eng, c["c4"].id)
    assert sorted(c4["product_ids"]) == sorted([world.p1.id, world.p2.id])
    (c1,) = rows(eng, c["c1"].id)
    assert (c1["two_way"], c1["owner_id"], c1["channel"]) == (
        True,
        world.users["rep_n1"].id,
        "field_visit",
    )

    # planned and saved calls are not touchpoints
    assert rows(eng, c["planned"].id) == rows(eng, c["saved"].id) == []
    erased = (
        eng.cursor()
        .execute("SELECT status FROM hcps WHERE account_id = ?", [h["h5"].id])
        .fetchone()
    )
    assert erased == ("erased",)


def test_incremental_refresh_reads_new_calls_and_amendments(session, world, analytics_dir):
    eng = Engine(analytics_dir)  # one engine across generations, as a web worker keeps it
    refresh(session, analytics_dir)
    before = snapshot.read_manifest(analytics_dir)
    assert headline(eng)["touchpoints"] == 28
    files = {m: (analytics_dir / p).stat().st_mtime_ns for m, p in before["months"].items()}

    n1, n2 = world.users["rep_n1"], world.users["rep_n2"]
    # the saved call to h1 on 23 February is submitted; rep_n2 records a new call to h3 on
    # 26 February; the group call c2 is amended from 20 to 60 minutes
    submit_activity(session, n1, world.calls["saved"].id)
    new = create_activity(
        session,
        n2,
        account_ids=[world.h["h3"].id],
        channel="field_visit",
        start_at=at(2, 26),
        status="saved",
        duration_min=25,
        outcome="positive",
        product_ids=[world.p2.id],
    )
    submit_activity(session, n2, new.id)
    amend_activity(
        session, n1, world.calls["c2"].id, reason="Ran long", changes={"duration_min": 60}
    )

    result = refresh(session, analytics_dir)
    assert not result.full
    assert result.months == ["2024-02"] and result.dimensions == []
    assert result.touchpoints == 1 + 1 + 3  # the two new calls, c2's three rows again
    after = snapshot.read_manifest(analytics_dir)
    assert after["generation"] == before["generation"] + 1
    assert after["months"]["2024-02"] != before["months"]["2024-02"]
    for month in ("2024-01", "2024-03"):
        assert after["months"][month] == before["months"][month]
        assert (analytics_dir / after["months"][month]).stat().st_mtime_ns == files[month]
    assert after["dimensions"] == before["dimensions"]

    h = headline(eng)
    assert eng.generation == after["generation"]
    assert h["touchpoints"] == 28 + 2  # c2's rows replaced, not added again
    assert h["calls"] == 8 + 2
    assert h["engaged"] == 4 + 1  # h3's first two-way touchpoint
    # L2: h3 made 2 of 4 × 15/30 planned
    assert h["attainment"] == pytest.approx((7 + 1) / 11)
    assert h["remote_minutes"] == pytest.approx((60 + 45) / 2)

    # run again at once: the same activities are read again (the overlap), nothing doubles
    again = refresh(session, analytics_dir)
    assert again.months == ["2024-02"]
    assert headline(eng) == h


def test_full_refresh_writes_a_new_generation(session, world, analytics_dir):
    refresh(session, analytics_dir)
    first = snapshot.read_manifest(analytics_dir)
    result = refresh(session, analytics_dir, full=True)
    assert result.full
    second = snapshot.read_manifest(analytics_dir)
    # readers of the first generation keep reading its files while the second is written
    assert second["generation"] == first["generation"] + 1
    assert set(second["months"].values()).isdisjoint(first["months"].values())
    assert all((analytics_dir / p).exists() for p in first["months"].values())
    assert headline(Engine(analytics_dir))["touchpoints"] == 28


def test_realigned_hcp_is_picked_up(session, world, analytics_dir):
    eng = Engine(analytics_dir)
    refresh(session, analytics_dir)
    south1 = replace(FEB, territory_id=world.t["south1"].id)
    south2 = replace(FEB, territory_id=world.t["south2"].id)
    assert (headline(eng, south1)["population"], headline(eng, south2)["population"]) == (1, 0)

    admin, h4 = world.users["admin"], world.h["h4"]
    row = session.query(AccountTerritory).filter_by(account_id=h4.id).one()
    unalign(session, admin, "account", row.id)
    align_account(session, admin, h4.id, world.t["south2"].id)
    result = refresh(session, analytics_dir)
    assert result.months == [] and result.dimensions == ["alignments"]
    assert (headline(eng, south1)["population"], headline(eng, south2)["population"]) == (0, 1)
    # h4's target entry (L2, 2 × 15/30 planned) moved with it
    assert headline(eng, south2)["planned"] == pytest.approx(1)
    assert headline(eng, south1)["targets"] == 0


def test_rep_who_changes_role_leaves_the_adoption_figures(session, world, analytics_dir):
    eng = Engine(analytics_dir)
    refresh(session, analytics_dir)
    assert (headline(eng)["reps"], headline(eng)["adopters"]) == (3, 2)
    update_user(session, world.users["admin"], world.users["rep_n2"].id, role="manager")
    result = refresh(session, analytics_dir)
    assert result.dimensions == ["reps"]
    # rep_n2 is a manager now: still a caller, no longer among the reps
    h = headline(eng)
    assert (h["reps"], h["adopters"], h["calls"]) == (2, 1, 8)


def test_erasure_after_a_refresh_is_picked_up(session, world, analytics_dir):
    from parcours.consent.gdpr import erase_hcp

    eng = Engine(analytics_dir)
    refresh(session, analytics_dir)
    erase_hcp(session, world.users["admin"], world.h["h2"].id, "GDPR request 43")
    result = refresh(session, analytics_dir)
    assert "hcps" in result.dimensions
    h = headline(eng)
    # h2 (9 touchpoints, engaged, a target) leaves the per-HCP figures, not the counts
    assert (h["population"], h["touched"], h["engaged"], h["targets"]) == (5, 4, 3, 4)
    assert h["per_hcp_mean"] == pytest.approx((8 + 4 + 3 + 1 + 0) / 5)
    assert (h["touchpoints"], h["calls"], h["attainment"]) == (28, 8, pytest.approx(7 / 11))


def test_empty_database_gives_zeros(session, analytics_dir):
    nothing = headline(Engine(analytics_dir))  # no snapshot written yet
    result = refresh(session, analytics_dir)
    assert result.full and result.touchpoints == 0 and result.months == []
    h = headline(Engine(analytics_dir))
    assert h == nothing
    zeros = ("touchpoints", "reps", "adopters", "calls", "remote_calls", "planned", "credited")
    assert {k: h[k] for k in zeros} == dict.fromkeys(zeros, 0)
    assert (h["engaged"], h["touched"], h["targets"], h["population"]) == (0, 0, 0, 0)
    ratios = (
        "adoption",
        "remote_share",
        "attainment",
        "reach",
        "per_hcp_mean",
        "per_hcp_p50",
        "open_rate",
        "click_rate",
        "attendance_rate",
        "remote_minutes",
        "survey_rate",
        "journey_conversion",
    )
    assert {k: h[k] for k in ratios} == dict.fromkeys(ratios)
    full = compute(Runner(Engine(analytics_dir).cursor()), FEB)
    assert full.tables["touchpoints"] == full.tables["attainment_by_territory"] == []
    assert refresh(session, analytics_dir).months == []  # an incremental one, still empty


def test_one_refresh_at_a_time(session, world, analytics_dir):
    analytics_dir.mkdir(parents=True)
    with open(analytics_dir / ".lock", "w") as running:  # a refresh in another process
        fcntl.flock(running, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert refresh(session, analytics_dir) is None
        assert snapshot.read_manifest(analytics_dir) is None
    assert refresh(session, analytics_dir).full  # once it is done, the next one runs
    assert snapshot.read_manifest(analytics_dir)["generation"] == 1


def test_readers_never_see_a_snapshot_half_swapped(session, world, analytics_dir):
    """A web worker's threads keep querying while the worker writes new generations."""
    refresh(session, analytics_dir)
    engine = Engine(analytics_dir)
    expected = engine.cursor().execute("SELECT count(*) FROM touchpoints").fetchone()[0]
    seen, errors, stop = [], [], threading.Event()

    def reader():
        while not stop.is_set():
            try:
                cur = engine.cursor()
                seen.append(cur.execute("SELECT count(*) FROM touchpoints").fetchone()[0])
                cur.close()
            except Exception as exc:  # noqa: BLE001 (any failure is the test's finding)
                errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for _ in range(4):
            refresh(session, analytics_dir, full=True)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert seen and set(seen) == {expected}
    engine.cursor().close()  # the next request points at the latest generation
    assert engine.generation == snapshot.read_manifest(analytics_dir)["generation"]
