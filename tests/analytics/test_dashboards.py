"""Dashboard pages: each role sees its own scope (exports and lists included), bad filters are
refused next to their field, and the charts come with tables and exports."""

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from parcours.activities.models import Activity, Attendee
from parcours.analytics import snapshot

from factories import api_headers, create_hcp, create_territory_tree, create_user, login

TODAY = datetime.now(UTC).date()


def _touch(
    session, hcp, owner, channel="field_visit", kind="detail", days_ago=3, outcome="positive"
):
    at = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0) - timedelta(
        days=days_ago
    )
    act = Activity(
        channel=channel,
        kind=kind,
        status="submitted",
        owner_id=owner.id,
        account_id=hcp.id,
        start_at=at,
        duration_min=15,
        outcome=outcome,
        product_ids=[],
        key_messages=[],
        submitted_at=at,
    )
    session.add(act)
    session.flush()
    session.add(Attendee(activity_id=act.id, account_id=hcp.id, start_at=at, channel=channel))
    session.flush()
    return act


@pytest.fixture
def world(session, analytics_dir):
    tree = create_territory_tree(session)
    people = {
        "rep": create_user(session, "rep", territories=[tree["north1"]]),
        "rep_south": create_user(session, "rep", territories=[tree["south1"]]),
        "manager": create_user(session, "manager", territories=[tree["north"]]),
        "marketing": create_user(session, "marketing"),
        "reviewer": create_user(session, "reviewer"),
        "french": create_user(session, "manager", territories=[tree["north"]], language="fr"),
    }
    own = create_hcp(session, tree["north1"], last_name="Ownington")
    other = create_hcp(session, tree["south1"], last_name="Otherby")
    for _ in range(3):
        _touch(session, own, people["rep"])
    for _ in range(5):
        _touch(session, other, people["rep_south"], channel="remote_detailing")
    snapshot.refresh(session.connection(), analytics_dir, full=True)
    return {"tree": tree, "own": own, "other": other, **people}


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def _headline(client, query: str = "") -> dict[str, str]:
    r = client.get(f"/analytics/export/headline.csv{query}")
    assert r.status_code == 200, r.text
    return {row["figure"]: row["value"] for row in _csv(r.text)}


@pytest.mark.parametrize(
    ("who", "touchpoints"),
    [("rep", "3"), ("manager", "3"), ("marketing", "8")],
)
def test_each_role_sees_its_own_scope_on_the_page_and_in_exports(client, world, who, touchpoints):
    login(client, world[who].email)
    page = client.get("/analytics")
    assert page.status_code == 200
    assert 'data-kpi="touchpoints"' in page.text
    assert f'<p class="kpi-value">{touchpoints}</p>' in page.text
    assert _headline(client)["touchpoints"] == touchpoints


def test_a_rep_cannot_reach_another_territory_even_through_an_export(client, world):
    login(client, world["rep"].email)
    south = world["tree"]["south1"].id
    page = client.get(f"/analytics?territory={south}")
    assert page.status_code == 422
    assert "This territory is not one you can see." in page.text
    assert 'class="field has-error"' in page.text
    export = client.get(f"/analytics/export/touchpoints.csv?territory={south}")
    assert export.status_code == 422
    other_rep = client.get(f"/analytics?rep={world['rep_south'].id}")
    assert other_rep.status_code == 422
    # the list behind "HCPs touched" holds only the rep's own HCP
    drill = client.get("/analytics/drill?what=touched")
    assert drill.status_code == 200
    assert "Ownington" in drill.text and "Otherby" not in drill.text


def test_a_manager_filters_down_to_a_territory_and_a_rep(client, world):
    login(client, world["manager"].email)
    tree = world["tree"]
    assert _headline(client, f"?territory={tree['north2'].id}")["touchpoints"] == "0"
    assert _headline(client, f"?territory={tree['north1'].id}")["touchpoints"] == "3"
    assert _headline(client, f"?rep={world['rep'].id}")["touchpoints"] == "3"
    assert client.get(f"/analytics?territory={tree['south1'].id}").status_code == 422


def test_a_reviewer_has_no_dashboard(client, world):
    login(client, world["reviewer"].email)
    assert client.get("/analytics").status_code == 403
    assert client.get("/analytics/export/headline.csv").status_code == 403


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("?start=yesterday", "start", "Give a date as YYYY-MM-DD."),
        ("?start=2026-05-02&end=2026-05-01", "end", "The period ends before it starts."),
        ("?start=2020-01-01&end=2026-01-01", "start", "A period is at most three years."),
        ("?channel=fax", "channel", "Choose a channel from the list."),
        ("?country=France", "country", "A country is a two-letter code, such as FR."),
        ("?tier=9", "tier", "A tier is a number from 1 to 5."),
        ("?territory=abc", "territory", "Choose a territory from the list."),
        ("?segment=ZZZ", "segment", "This segment does not exist."),
        ("?product=999999", "product", "This product does not exist."),
    ],
)
def test_bad_filters_are_refused_next_to_their_field(client, world, query, field, message):
    login(client, world["marketing"].email)
    page = client.get(f"/analytics{query}")
    assert page.status_code == 422
    assert message in page.text
    assert f'id="{field}-error"' in page.text or f"{field}-error" in page.text
    api_like = client.get(f"/analytics/export/headline.csv{query}")
    assert api_like.status_code == 422


def test_every_chart_has_a_table_and_its_exports(client, world):
    login(client, world["marketing"].email)
    page = client.get("/analytics")
    for chart in (
        "touchpoints",
        "mix",
        "engaged",
        "distribution",
        "adoption",
        "attainment",
        "segments",
    ):
        assert f'data-chart="{chart}"' in page.text
    assert page.text.count("<table") >= 8
    assert "/vendor/chart.js/dist/chart.umd.min.js" in page.text
    r = client.get("/analytics/export/engaged.parquet")
    assert r.status_code == 200
    table = pq.read_table(io.BytesIO(r.content)).to_pylist()
    by_channel = {row["channel"]: row for row in table}
    assert by_channel["field_visit"]["touched"] == 1
    assert by_channel["remote_detailing"]["engaged"] == 1
    assert by_channel[None]["touched"] == 2
    assert client.get("/analytics/export/nothing.csv").status_code == 422
    assert client.get("/analytics/export/engaged.xlsx").status_code == 422


def test_drill_down_from_a_figure_to_its_touchpoints(client, world):
    login(client, world["marketing"].email)
    r = client.get("/analytics/drill?what=touchpoints&d_channel=remote_detailing")
    assert r.status_code == 200
    assert r.text.count("Otherby") == 5 and "Ownington" not in r.text
    r = client.get("/analytics/drill?what=bucket&lo=4")
    assert "Otherby" in r.text and "Ownington" not in r.text
    assert client.get("/analytics/drill?what=bucket&lo=0").status_code == 422
    assert client.get("/analytics/drill?what=everything").status_code == 422


def test_the_dashboard_speaks_french(client, world):
    login(client, world["french"].email)
    page = client.get(f"/analytics?start={TODAY - timedelta(days=29)}&end={TODAY}")
    assert page.status_code == 200
    assert "Le tableau de bord de mon équipe" in page.text
    assert (
        "Réalisation du plan d'appels" in page.text
        or "Réalisation du plan d&#39;appels" in page.text
    )


def test_with_no_snapshot_yet_the_page_says_so(client, session, analytics_dir):
    tree = create_territory_tree(session)
    user = create_user(session, "manager", territories=[tree["north"]])
    login(client, user.email)
    page = client.get("/analytics")
    assert page.status_code == 200
    assert "The figures are being computed for the first time" in page.text
    assert date.today().year  # the page still shows its period and filters
    assert 'name="start"' in page.text


def test_the_api_gives_the_same_figures_within_the_callers_scope(client, world):
    rep = client.get("/api/v1/kpis", headers=api_headers(client, world["rep"]))
    assert rep.status_code == 200
    body = rep.json()
    assert body["figures"]["touchpoints"] == 3
    assert {r["channel"] for r in body["tables"]["engaged"]} == {"field_visit", None}
    everyone = client.get("/api/v1/kpis", headers=api_headers(client, world["marketing"])).json()
    assert everyone["figures"]["touchpoints"] == 8
    assert everyone["figures"]["remote_calls"] == 5


def test_the_api_refuses_bad_filters_with_problem_details(client, world):
    headers = api_headers(client, world["rep"])
    r = client.get(f"/api/v1/kpis?territory={world['tree']['south1'].id}", headers=headers)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"] == [
        {"field": "territory", "message": "This territory is not one you can see."}
    ]
    r = client.get("/api/v1/kpis?start=2026-13-01", headers=headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "start"
    reviewer = client.get("/api/v1/kpis", headers=api_headers(client, world["reviewer"]))
    assert reviewer.status_code == 403
