"""The HTML pages through the real app: login, home, HCP 360, call reports, language, HTMX."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import event, func, select

from parcours.activities import service as activities
from parcours.activities.models import Activity, Amendment, Task
from parcours.core.models import User

from factories import (
    PASSWORD,
    create_hcp,
    create_product,
    create_territory_tree,
    create_user,
    login,
)

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture
def client(client):
    """Anonymous pages follow Accept-Language (French by default); these tests read English."""
    client.headers["Accept-Language"] = "en"
    return client


@pytest.fixture
def world(session):
    tree = create_territory_tree(session)
    rep = create_user(session, "rep", territories=[tree["north1"]], full_name="Camille Rep")
    hcp = create_hcp(session, tree["north1"], last_name="Dupont", first_name="Marie")
    outsider = create_hcp(session, tree["south1"], last_name="Lointain", first_name="Zoé")
    product = create_product(session, "Vaxelor")
    return SimpleNamespace(tree=tree, rep=rep, hcp=hcp, outsider=outsider, product=product)


def csrf_of(client, url: str = "/") -> str:
    page = client.get(url)
    return re.search(r'name="_csrf" value="([^"]+)"', page.text).group(1)


def as_rep(client, world) -> str:
    assert login(client, world.rep.email).status_code == 303
    return csrf_of(client)


def local_today_at(hour: int, minute: int = 0) -> datetime:
    now = datetime.now(activities.local_zone())
    return now.replace(hour=hour, minute=minute, second=0, microsecond=0)


def call_form(world, token: str, **over) -> dict:
    when = datetime.now(activities.local_zone()) - timedelta(hours=1)
    data = {
        "_csrf": token,
        "channel": "field_visit",
        "date": when.date().isoformat(),
        "time": when.strftime("%H:%M"),
        "duration_min": "20",
        "outcome": "positive",
        "product_ids": [str(world.product.id)],
        "key_messages": ["Efficacy at 12 months"],
        "notes": "Asked about dosing.",
        "action": "save",
    }
    data.update(over)
    return data


def count_calls(session) -> int:
    return session.scalar(select(func.count()).select_from(Activity))


# --- login -------------------------------------------------------------------------------------


def test_login_redirects_home_and_shows_the_user(client, world):
    resp = login(client, world.rep.email)
    assert resp.status_code == 303
    assert resp.headers["location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert "Camille Rep" in home.text


def test_failed_login_shows_the_message_next_to_the_password(client, world):
    resp = login(client, world.rep.email, "not-the-password")
    assert resp.status_code == 401
    assert 'id="password-error"' in resp.text
    assert "Wrong email or password." in resp.text
    assert 'aria-invalid="true"' in resp.text
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_locked_account_shows_the_lock_message(client, world):
    for _ in range(5):
        login(client, world.rep.email, "not-the-password")
    resp = login(client, world.rep.email)  # even the right password is refused while locked
    assert resp.status_code == 429
    assert "Account locked" in resp.text
    assert client.get("/", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/accounts?q=dup", "/accounts?q=dup"),
        ("https://evil.example/steal", "/"),
        ("//evil.example/steal", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_login_follows_next_only_to_a_local_path(client, world, target, expected):
    token = csrf_of(client, "/login")
    resp = client.post(
        "/login",
        data={"email": world.rep.email, "password": PASSWORD, "_csrf": token, "next": target},
        follow_redirects=False,
    )
    assert resp.status_code == 303
    assert resp.headers["location"] == expected


def test_a_page_needing_login_sends_to_login_with_next(client, world):
    resp = client.get(f"/accounts/{world.hcp.id}", follow_redirects=False)
    assert resp.status_code == 303
    assert resp.headers["location"] == f"/login?next=/accounts/{world.hcp.id}"


def test_login_without_csrf_is_refused(client, world):
    client.get("/login")
    resp = client.post("/login", data={"email": world.rep.email, "password": PASSWORD})
    assert resp.status_code == 403
    assert client.get("/", follow_redirects=False).status_code == 303


def test_form_post_without_csrf_is_403_and_writes_nothing(client, session, world):
    as_rep(client, world)
    before = count_calls(session)
    data = call_form(world, "")
    data.pop("_csrf")
    resp = client.post(f"/accounts/{world.hcp.id}/calls", data=data)
    assert resp.status_code == 403
    assert "<h1" in resp.text
    assert count_calls(session) == before


def test_logout_ends_the_session(client, world):
    token = as_rep(client, world)
    resp = client.post("/logout", data={"_csrf": token}, follow_redirects=False)
    assert resp.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303


# --- home --------------------------------------------------------------------------------------


def test_rep_home_lists_todays_calls_in_time_order(client, session, world):
    later = create_hcp(session, world.tree["north1"], last_name="Zebrowski", first_name="Anne")
    activities.create_activity(
        session, world.rep, account_ids=[later.id], channel="phone", start_at=local_today_at(15, 30)
    )
    activities.create_activity(
        session,
        world.rep,
        account_ids=[world.hcp.id],
        channel="field_visit",
        start_at=local_today_at(9, 0),
    )
    activities.create_activity(
        session,
        world.rep,
        account_ids=[world.hcp.id],
        channel="field_visit",
        start_at=local_today_at(9, 0) - timedelta(days=2),
    )
    activities.create_task(
        session,
        world.rep,
        title="Send the leaflet",
        due_date=datetime.now(UTC).date(),
        account_id=world.hcp.id,
    )
    as_rep(client, world)
    page = client.get("/").text
    assert 'id="calls-title"' in page
    assert page.index("Dr Marie Dupont") < page.index("Dr Anne Zebrowski")
    assert "09:00" in page and "15:30" in page
    assert page.count('href="/calls/') == 2  # the call of two days ago is not today's
    assert "Send the leaflet" in page


def test_home_empty_state_says_what_to_do(client, world):
    as_rep(client, world)
    page = client.get("/").text
    assert "No calls planned today" in page
    assert 'href="/accounts"' in page


def test_reviewer_home_is_the_review_inbox(client, session):
    reviewer = create_user(session, "reviewer", review_role="medical")
    login(client, reviewer.email)
    home = client.get("/", follow_redirects=False)
    assert home.headers["location"] == "/review"
    page = client.get("/review").text
    assert 'href="/review"' in page
    assert 'href="/accounts"' not in page


# --- accounts and HCP 360 ----------------------------------------------------------------------


def test_account_search_is_scoped_and_htmx_gets_the_partial(client, world):
    as_rep(client, world)
    full = client.get("/accounts?q=d")
    assert full.status_code == 200
    assert "<html" in full.text
    assert "Dr Marie Dupont" in full.text
    assert "Lointain" not in client.get("/accounts?q=lointain").text
    part = client.get("/accounts?q=dup", headers={"HX-Request": "true"})
    assert part.status_code == 200
    assert "<html" not in part.text
    assert "Dr Marie Dupont" in part.text


def test_hcp_360_shows_one_timeline_newest_first(client, session, world):
    now = datetime.now(UTC)
    activities.create_activity(
        session,
        world.rep,
        account_ids=[world.hcp.id],
        channel="email",
        start_at=now - timedelta(days=9),
        subject="Older email",
    )
    activities.create_activity(
        session,
        world.rep,
        account_ids=[world.hcp.id],
        channel="webinar",
        start_at=now - timedelta(days=1),
        subject="Newer webinar",
    )
    activities.create_activity(
        session,
        world.rep,
        account_ids=[world.hcp.id],
        channel="phone",
        start_at=now - timedelta(days=4),
        status="saved",
    )
    as_rep(client, world)
    page = client.get(f"/accounts/{world.hcp.id}").text
    assert "Dr Marie Dupont" in page
    assert "consent-badge is-none" in page  # no consent recorded yet, said per channel
    assert "Log a call" in page
    assert page.index("Newer webinar") < page.index('href="/calls/') < page.index("Older email")
    emails = client.get(f"/accounts/{world.hcp.id}?channel=email", headers={"HX-Request": "true"})
    assert "<html" not in emails.text
    assert "Older email" in emails.text and "Newer webinar" not in emails.text


def test_hcp_360_loads_more_with_a_cursor(client, session, world):
    now = datetime.now(UTC)
    for i in range(23):
        activities.create_activity(
            session,
            world.rep,
            account_ids=[world.hcp.id],
            channel="email",
            start_at=now - timedelta(days=i + 1),
            subject=f"Mail {i:02d}",
        )
    as_rep(client, world)
    page = client.get(f"/accounts/{world.hcp.id}").text
    assert "Mail 19" in page and "Mail 20" not in page
    more = re.search(r'hx-get="(/accounts/\d+\?cursor=[^"]+)"', page).group(1)
    rest = client.get(more, headers={"HX-Request": "true"}).text
    assert "<html" not in rest
    assert "Mail 20" in rest and "Mail 22" in rest and "Mail 19" not in rest


def test_a_rep_gets_404_for_an_hcp_outside_their_territories(client, world):
    as_rep(client, world)
    resp = client.get(f"/accounts/{world.outsider.id}")
    assert resp.status_code == 404
    assert "Page not found" in resp.text
    assert "Lointain" not in resp.text
    assert client.get(f"/accounts/{world.outsider.id}/calls/new").status_code == 404


def _count_queries(engine, fn) -> int:
    seen = []

    def before(*_args, **_kw):
        seen.append(1)

    event.listen(engine, "before_cursor_execute", before)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", before)
    return len(seen)


def test_hcp_360_and_home_take_a_fixed_number_of_queries(client, session, engine, world):
    as_rep(client, world)
    url = f"/accounts/{world.hcp.id}"

    def add_calls(n):
        for _ in range(n):
            activities.create_activity(
                session,
                world.rep,
                account_ids=[world.hcp.id],
                channel="phone",
                start_at=local_today_at(10),
                product_ids=[world.product.id],
            )
            activities.create_task(
                session,
                world.rep,
                title="Follow up",
                due_date=datetime.now(UTC).date(),
                account_id=world.hcp.id,
            )

    add_calls(1)
    few_360 = _count_queries(engine, lambda: client.get(url))
    few_home = _count_queries(engine, lambda: client.get("/"))
    add_calls(8)
    assert _count_queries(engine, lambda: client.get(url)) == few_360
    assert _count_queries(engine, lambda: client.get("/")) == few_home
    assert few_360 <= 20 and few_home <= 10


def test_a_task_is_created_from_hcp_360_and_marked_done(client, session, world):
    token = as_rep(client, world)
    resp = client.post(
        f"/accounts/{world.hcp.id}/tasks",
        data={"_csrf": token, "title": "Bring the study", "due_date": ""},
        follow_redirects=False,
    )
    assert resp.status_code == 303
    task = session.scalar(select(Task).where(Task.title == "Bring the study"))
    assert task.status == "open"
    empty = client.post(
        f"/accounts/{world.hcp.id}/tasks",
        data={"_csrf": token, "title": " "},
        headers={"HX-Request": "true"},
    )
    assert empty.status_code == 422
    assert "Say what needs doing." in empty.text and "<html" not in empty.text
    done = client.post(
        f"/tasks/{task.id}/done", headers={"HX-Request": "true", "X-CSRF-Token": token}
    )
    assert done.status_code == 200
    assert "<html" not in done.text and "task-row done" in done.text
    session.refresh(task)
    assert task.status == "done"


# --- call reports ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "message"),
    [
        ("abc", "Enter the duration as a whole number of minutes."),
        ("5000", "Enter a duration between 0 and 1440 minutes."),
    ],
)
def test_saving_a_bad_duration_shows_the_field_error_and_writes_nothing(
    client, session, world, duration, message
):
    token = as_rep(client, world)
    before = count_calls(session)
    resp = client.post(
        f"/accounts/{world.hcp.id}/calls", data=call_form(world, token, duration_min=duration)
    )
    assert resp.status_code == 422
    assert 'id="duration_min-error"' in resp.text
    assert message in resp.text
    assert f'value="{duration}"' in resp.text  # what the rep typed is kept
    assert count_calls(session) == before


def test_submit_refused_for_missing_fields_writes_nothing(client, session, world):
    token = as_rep(client, world)
    before = count_calls(session)
    resp = client.post(
        f"/accounts/{world.hcp.id}/calls",
        data=call_form(world, token, outcome="", product_ids=[], action="submit"),
    )
    assert resp.status_code == 422
    assert "Choose an outcome." in resp.text
    assert "Choose at least one product discussed." in resp.text
    assert count_calls(session) == before


def test_submit_locks_the_report_and_a_later_edit_answers_409(client, session, world):
    token = as_rep(client, world)
    resp = client.post(
        f"/accounts/{world.hcp.id}/calls",
        data=call_form(world, token, action="submit"),
        follow_redirects=False,
    )
    assert resp.status_code == 303
    call_id = int(resp.headers["location"].rsplit("/", 1)[1])
    act = session.get(Activity, call_id)
    assert act.status == "submitted" and act.submitted_at is not None
    view = client.get(f"/calls/{call_id}").text
    assert "and locked" in view
    assert 'name="action" value="save"' not in view  # read-only: no edit buttons
    edit = client.post(
        f"/calls/{call_id}", data=call_form(world, token, duration_min="99", action="save")
    )
    assert edit.status_code == 409
    assert "This was already done" in edit.text
    session.refresh(act)
    assert act.duration_min == 20


def test_save_then_submit_an_existing_draft(client, session, world):
    token = as_rep(client, world)
    resp = client.post(
        f"/accounts/{world.hcp.id}/calls",
        data=call_form(world, token, outcome=""),
        follow_redirects=False,
    )
    call_id = int(resp.headers["location"].rsplit("/", 1)[1])
    assert session.get(Activity, call_id).status == "saved"
    form = client.get(f"/calls/{call_id}").text
    assert 'action="/calls/' in form and "Draft" in form
    resp = client.post(
        f"/calls/{call_id}", data=call_form(world, token, action="submit"), follow_redirects=False
    )
    assert resp.status_code == 303
    assert session.get(Activity, call_id).status == "submitted"


def test_an_amendment_keeps_the_original(client, session, world):
    token = as_rep(client, world)
    resp = client.post(
        f"/accounts/{world.hcp.id}/calls",
        data=call_form(world, token, action="submit"),
        follow_redirects=False,
    )
    call_id = int(resp.headers["location"].rsplit("/", 1)[1])
    no_reason = client.post(
        f"/calls/{call_id}/amendments", data=call_form(world, token, duration_min="45", reason="")
    )
    assert no_reason.status_code == 422
    assert "Say why the call is amended." in no_reason.text
    resp = client.post(
        f"/calls/{call_id}/amendments",
        data=call_form(world, token, duration_min="45", reason="Typed 20 instead of 45"),
        follow_redirects=False,
    )
    assert resp.status_code == 303
    act = session.get(Activity, call_id)
    session.refresh(act)
    assert act.duration_min == 20 and act.status == "submitted"
    amendment = session.scalar(select(Amendment).where(Amendment.activity_id == call_id))
    assert amendment.changes == {"duration_min": 45}
    view = client.get(f"/calls/{call_id}").text
    assert "Typed 20 instead of 45" in view
    assert "45 min" in view and "20 min" in view
    # The HCP's timeline reads as amended
    timeline = client.get(f"/accounts/{world.hcp.id}").text
    item = timeline[timeline.index(f'href="/calls/{call_id}"') :][:1500]
    assert "45 min" in item and "20 min" not in item and "Amended" in item


def test_an_htmx_request_gets_the_partial_error_fragment(client, world):
    as_rep(client, world)
    resp = client.get(f"/accounts/{world.outsider.id}", headers={"HX-Request": "true"})
    assert resp.status_code == 404
    assert "<html" not in resp.text and "<h1" in resp.text


# --- language ----------------------------------------------------------------------------------


def test_language_switch_changes_the_page_language(client, session, world):
    token = as_rep(client, world)
    assert '<html lang="en">' in client.get("/").text
    resp = client.post(
        "/language",
        data={"_csrf": token, "language": "fr", "next": "/accounts"},
        follow_redirects=False,
    )
    assert resp.status_code == 303 and resp.headers["location"] == "/accounts"
    page = client.get("/").text
    assert '<html lang="fr">' in page
    assert "Appels du jour" in page
    assert session.get(User, world.rep.id).language == "fr"


def test_french_and_english_catalogues_have_the_same_keys():
    import json

    locales = ROOT / "src" / "parcours" / "core" / "locales"
    for fr_path in [locales / "fr.json", *locales.glob("*.fr.json")]:
        en_path = fr_path.with_name(fr_path.name.replace("fr.json", "en.json"))
        fr = json.loads(fr_path.read_text(encoding="utf-8"))
        en = json.loads(en_path.read_text(encoding="utf-8"))
        assert set(fr) == set(en), fr_path.name
        assert all(fr.values()) and all(en.values()), fr_path.name


# --- admin -------------------------------------------------------------------------------------


def test_admin_pages_are_for_admins(client, session, world):
    as_rep(client, world)
    assert client.get("/admin/users").status_code == 403
    admin = create_user(session, "admin")
    client.cookies.clear()
    login(client, admin.email)
    for url in (
        "/admin/users",
        "/admin/territories",
        f"/admin/alignments?territory={world.tree['north1'].id}",
    ):
        assert client.get(url).status_code == 200, url


def test_admin_creates_a_user_and_sees_field_errors(client, session):
    admin = create_user(session, "admin")
    login(client, admin.email)
    token = csrf_of(client, "/admin/users/new")
    bad = client.post(
        "/admin/users",
        data={
            "_csrf": token,
            "email": "new@example.test",
            "full_name": "New Rep",
            "role": "rep",
            "language": "en",
            "password": "short",
        },
    )
    assert bad.status_code == 422
    assert 'id="password-error"' in bad.text
    ok = client.post(
        "/admin/users",
        data={
            "_csrf": token,
            "email": "new@example.test",
            "full_name": "New Rep",
            "role": "rep",
            "language": "en",
            "password": "long-enough-pass",
        },
        follow_redirects=False,
    )
    assert ok.status_code == 303
    created = session.scalar(select(User).where(User.email == "new@example.test"))
    assert created.role == "rep"


def test_admin_unlocks_a_locked_user(client, session, world):
    for _ in range(5):
        login(client, world.rep.email, "not-the-password")
    admin = create_user(session, "admin")
    client.cookies.clear()
    login(client, admin.email)
    page = client.get(f"/admin/users/{world.rep.id}")
    assert "Unlock" in page.text
    token = csrf_of(client, f"/admin/users/{world.rep.id}")
    client.post(f"/admin/users/{world.rep.id}", data={"_csrf": token, "action": "unlock"})
    client.cookies.clear()
    assert login(client, world.rep.email).status_code == 303


# --- accessibility -----------------------------------------------------------------------------


@pytest.mark.browser
def test_pages_have_no_serious_accessibility_violations(client, session, world):
    """axe-core in headless Chromium; the browser's requests are answered by the test app."""
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists() or not AXE.exists():
        pytest.skip("needs Debian's chromium and `npm install` in web/")
    from playwright.sync_api import sync_playwright

    activities.create_activity(
        session,
        world.rep,
        account_ids=[world.hcp.id],
        channel="phone",
        start_at=local_today_at(9),
        product_ids=[world.product.id],
    )
    token = as_rep(client, world)
    done = client.post(
        f"/accounts/{world.hcp.id}/calls",
        data=call_form(world, token, action="submit"),
        follow_redirects=False,
    )
    call_url = done.headers["location"]

    def answer(route):
        req = route.request
        path = req.url.split("testserver", 1)[1]
        resp = client.request(
            req.method,
            path,
            content=req.post_data_buffer,
            headers={
                k: v
                for k, v in req.headers.items()
                if k.lower() in ("content-type", "hx-request", "x-csrf-token")
            },
            follow_redirects=False,
        )
        headers = {
            k: v for k, v in resp.headers.items() if k.lower() in ("content-type", "location")
        }
        route.fulfill(status=resp.status_code, headers=headers, body=resp.content)

    pages = [
        "/",
        "/accounts",
        f"/accounts/{world.hcp.id}",
        f"/accounts/{world.hcp.id}/calls/new",
        call_url,
    ]
    found = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(chromium),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        for width, height in ((1024, 768), (768, 1024)):
            page = browser.new_page(viewport={"width": width, "height": height})
            page.route("http://testserver/**", answer)
            for url in pages:
                page.goto("http://testserver" + url)
                page.add_script_tag(path=str(AXE))
                violations = page.evaluate(
                    "async () => (await axe.run(document)).violations"
                    ".filter(v => ['serious', 'critical'].includes(v.impact))"
                    ".map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))"
                )
                found += [f"{url} @{width}: {v}" for v in violations]
            page.close()
        browser.close()
    assert not found, "\n".join(found)


def test_every_literal_message_key_in_the_templates_is_in_the_catalogue():
    from parcours.core.i18n import catalogue

    en = catalogue("en")
    pattern = re.compile(r"""\bt\(\s*["']([a-z_]+\.[a-zA-Z0-9_.]+)["']""")
    missing = set()
    for path in (ROOT / "src" / "parcours").rglob("*"):
        if path.suffix in (".html", ".py") and (
            "templates" in path.parts or path.name == "pages.py"
        ):
            missing |= {k for k in pattern.findall(path.read_text(encoding="utf-8")) if k not in en}
    assert not missing, sorted(missing)
