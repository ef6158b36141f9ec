"""Remote meetings: scheduling under consent, personal links and passcodes, the host's powers,
and the call report at the end. The room's WebSocket is tested in test_room.py, the two
browsers in tests/browser/test_meeting_room.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from parcours.activities.models import Activity, Attendee
from parcours.core.errors import Conflict, Forbidden, Invalid, NotFound, TooMany
from parcours.core.models import AuditRecord
from parcours.meetings import service
from parcours.meetings.models import Meeting

from content_factories import acting, approved_version
from factories import consent_to_remote_meetings, create_hcp, create_user, login


def consent_to_meetings(session, *accounts, status="opted_in"):
    consent_to_remote_meetings(session, *(a.id for a in accounts), status=status)


def schedule(session, mlr, *accounts, **over):
    with acting(session, mlr.rep):
        return service.schedule(
            session,
            mlr.rep,
            account_ids=[a.id for a in accounts or [mlr.hcp]],
            starts_at=over.pop("starts_at", datetime.now(UTC) + timedelta(minutes=30)),
            **over,
        )


@pytest.fixture
def meeting(session, mlr):
    consent_to_meetings(session, mlr.hcp)
    return schedule(session, mlr, title="Renal update")


def test_a_meeting_is_a_planned_remote_call_with_a_link_and_passcode_per_hcp(session, mlr, meeting):
    m, codes = meeting
    act = session.get(Activity, m.activity_id)
    assert (act.channel, act.status, act.owner_id) == ("remote_detailing", "planned", mlr.rep.id)
    timeline = session.scalars(select(Attendee.account_id).where(Attendee.activity_id == act.id))
    assert list(timeline) == [mlr.hcp.id]
    [att] = service.attendees(session, m.id)
    code = codes[att.id]
    assert len(code) == 6 and code.isdigit() and code not in att.passcode_hash
    assert service.attendee_for_token(session, service.link_token(att)) == (att, m)
    assert service.link(att).startswith(f"{service.get_settings().public_url}/m/{att.id}.")


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"starts_at": datetime.now(UTC) - timedelta(hours=1)}, "starts_at"),
        ({"starts_at": datetime.now(UTC) + timedelta(days=200)}, "starts_at"),
        ({"starts_at": datetime(2030, 1, 1, 9)}, "starts_at"),  # no time zone
        ({"duration_min": 2}, "duration_min"),
        ({"duration_min": 500}, "duration_min"),
        ({"title": "x" * 201}, "title"),
    ],
)
def test_bad_schedules_name_their_field_and_write_nothing(session, mlr, over, field):
    consent_to_meetings(session, mlr.hcp)
    with pytest.raises(Invalid) as refused:
        schedule(session, mlr, **over)
    assert refused.value.errors[0]["field"] == field
    assert session.scalar(select(Meeting.id)) is None


def test_no_meeting_without_consent_for_remote_meetings(session, mlr):
    with pytest.raises(Conflict, match="No consent") as refused:
        schedule(session, mlr)
    assert refused.value.errors[0]["field"] == "consent"
    consent_to_meetings(session, mlr.hcp, status="opted_out")
    with pytest.raises(Conflict, match="opted out"):
        schedule(session, mlr)


def test_one_to_three_hcps_and_only_reps_and_managers_host(session, mlr):
    others = [create_hcp(session, mlr.territory) for _ in range(3)]
    consent_to_meetings(session, mlr.hcp, *others)
    with pytest.raises(Invalid, match="one to 3"):
        schedule(session, mlr, mlr.hcp, *others)
    with pytest.raises(Invalid, match="one to 3"):
        schedule(session, mlr, mlr.hcp, mlr.hcp)
    with pytest.raises(Forbidden):
        service.schedule(
            session,
            mlr.marketing,
            account_ids=[mlr.hcp.id],
            starts_at=datetime.now(UTC) + timedelta(hours=1),
        )


def test_a_forged_or_ended_link_opens_nothing(session, mlr, meeting):
    m, _ = meeting
    [att] = service.attendees(session, m.id)
    token = service.link_token(att)
    for forged in (token[:-1] + ("0" if token[-1] != "0" else "1"), "1.abc.def", "", "x" * 200):
        with pytest.raises(NotFound):
            service.attendee_for_token(session, forged)
    with acting(session, mlr.rep):
        service.end(session, mlr.rep, m.id)
    with pytest.raises(NotFound, match="ended"):
        service.attendee_for_token(session, token)


def test_a_link_expires_two_hours_after_the_planned_end(session, mlr, meeting):
    m, _ = meeting
    [att] = service.attendees(session, m.id)
    m.starts_at = datetime.now(UTC) - timedelta(hours=3)
    session.flush()
    with pytest.raises(NotFound):
        service.attendee_for_token(session, service.link_token(att))


def test_wrong_passcodes_are_counted_per_link_and_per_address(session, mlr, meeting):
    m, codes = meeting
    [att] = service.attendees(session, m.id)
    service.ADDRESS_FAILURES.clear()
    for _ in range(service.PASSCODE_TRIES - 1):
        with pytest.raises(Invalid) as wrong:
            service.check_passcode(session, att, "12345a", "10.0.0.1")
        assert wrong.value.errors[0]["field"] == "passcode"
    service.check_passcode(session, att, codes[att.id], "10.0.0.1")  # resets the count
    assert att.failed_passcodes == 0
    for _ in range(service.PASSCODE_TRIES):
        with pytest.raises(Invalid):
            service.check_passcode(session, att, "000000x", "10.0.0.2")
    with pytest.raises(TooMany, match="this link"):
        service.check_passcode(session, att, codes[att.id], "10.0.0.3")
    att.blocked_until = None
    for _ in range(service.IP_FAILURES):
        service.ADDRESS_FAILURES.fail("10.0.0.9")
    with pytest.raises(TooMany, match="your network"):
        service.check_passcode(session, att, codes[att.id], "10.0.0.9")
    service.ADDRESS_FAILURES.clear()


def test_the_host_admits_refuses_removes_and_locks_and_all_of_it_is_audited(session, mlr, meeting):
    m, _ = meeting
    second = create_hcp(session, mlr.territory)
    consent_to_meetings(session, second)
    m2, _ = schedule(session, mlr, mlr.hcp, second)
    first, other = service.attendees(session, m2.id)
    with acting(session, mlr.rep):
        with pytest.raises(Conflict, match="not in the waiting room"):
            service.admit(session, mlr.rep, m2.id, first.id)
        service.enter_waiting_room(session, first, m2)
        service.enter_waiting_room(session, other, m2)
        assert service.admit(session, mlr.rep, m2.id, first.id).state == "admitted"
        assert m2.state == "live" and first.joined_at is not None
        assert service.refuse(session, mlr.rep, m2.id, other.id).state == "refused"
        with pytest.raises(Forbidden):
            service.enter_waiting_room(session, other, m2)  # refused stays out
        service.set_lock(session, mlr.rep, m2.id, True)
        assert service.remove(session, mlr.rep, m2.id, first.id).state == "removed"
        with pytest.raises(Forbidden):
            service.enter_waiting_room(session, first, m2)  # removed cannot come back
        session.flush()
    # another rep is not the host
    stranger = create_user(session, "rep", territories=[mlr.territory])
    with pytest.raises(NotFound):
        service.admit(session, stranger, m2.id, first.id)
    # an HCP who was never invited has no seat, hence no link, in this meeting
    third = create_hcp(session, mlr.territory)
    assert third.id not in {a.account_id for a in service.attendees(session, m2.id)}
    audited = session.scalars(
        select(AuditRecord.after).where(AuditRecord.entity == "meeting_attendees")
    ).all()
    states = [a.get("state") for a in audited if a]
    assert {"waiting", "admitted", "refused", "removed"} <= set(states)
    assert all("passcode_hash" not in a and "nonce" not in a for a in audited if a)
    locks = session.scalars(select(AuditRecord.after).where(AuditRecord.entity == "meetings"))
    assert any(a and a.get("locked") for a in locks)


def test_a_locked_meeting_takes_nobody_new(session, mlr, meeting):
    m, _ = meeting
    [att] = service.attendees(session, m.id)
    with acting(session, mlr.rep):
        service.set_lock(session, mlr.rep, m.id, True)
    with pytest.raises(Conflict, match="locked"):
        service.enter_waiting_room(session, att, m)


def test_only_content_approved_for_every_hcps_country_is_shown(session, mlr, meeting):
    m, _ = meeting
    mlr.rep.country = "FR"
    deck = approved_version(session, mlr, pages=2)
    assert service.presentable_for(session, mlr.rep, m, deck.id) == deck
    mlr.hcp.country = "DE"
    session.flush()
    with pytest.raises(Forbidden, match="attendee's country"):
        service.presentable_for(session, mlr.rep, m, deck.id)


def test_the_end_fills_the_call_report_with_real_times_and_slides(session, mlr, meeting):
    m, _ = meeting
    mlr.rep.country = "FR"
    deck = approved_version(session, mlr, pages=2, title="Deck shown remotely")
    deck.decided_at = datetime.now(UTC) - timedelta(hours=1)  # approved before the meeting
    [att] = service.attendees(session, m.id)
    with acting(session, mlr.rep):
        service.enter_waiting_room(session, att, m)
        service.admit(session, mlr.rep, m.id, att.id)
        m.started_at = datetime.now(UTC) - timedelta(minutes=14, seconds=10)
        t0 = m.started_at
        four, nine = t0 + timedelta(minutes=4), t0 + timedelta(minutes=9)
        shown = [(1, deck.id, 1, t0, four), (2, deck.id, 2, four, nine)]
        service.record_slides(session, mlr.rep, m, shown)
        service.record_slides(session, mlr.rep, m, shown)  # sent twice: stored once
        service.end(session, mlr.rep, m.id)
    act = session.get(Activity, m.activity_id)
    assert act.status == "saved" and act.duration_min == 15
    assert act.start_at == t0 and act.subject == "Renal update"
    assert mlr.product.id in act.product_ids  # from the deck shown
    from parcours.content import clm

    assert [(v.page, v.duration_ms) for v in clm.views_for_call(session, act.id)] == [
        (1, 240_000),
        (2, 300_000),
    ]
    assert att.state == "left" and att.left_at is not None
    assert m.state == "ended"


def test_the_rep_schedules_from_hcp_360_and_sees_the_passcode_once(client, session, mlr):
    consent_to_meetings(session, mlr.hcp)
    session.commit()
    login(client, mlr.rep.email)
    assert (
        f'href="/accounts/{mlr.hcp.id}/meetings/new"' in client.get(f"/accounts/{mlr.hcp.id}").text
    )
    page = client.get(f"/accounts/{mlr.hcp.id}/meetings/new")
    assert page.status_code == 200 and 'name="duration_min"' in page.text
    token = page.text.split('name="_csrf" value="')[1].split('"')[0]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    bad = client.post(
        f"/accounts/{mlr.hcp.id}/meetings",
        data={"_csrf": token, "date": tomorrow, "time": "25:99", "duration_min": "15"},
    )
    assert bad.status_code == 422 and "Choose a start" in bad.text
    assert session.scalar(select(Meeting.id)) is None
    done = client.post(
        f"/accounts/{mlr.hcp.id}/meetings",
        data={"_csrf": token, "date": tomorrow, "time": "10:30", "duration_min": "15"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    shown = client.get(done.headers["location"]).text
    assert "data-passcode" in shown and "/m/" in shown
    assert "data-passcode" not in client.get(done.headers["location"]).text  # once


def test_without_consent_the_schedule_page_says_why(client, session, mlr):
    session.commit()
    login(client, mlr.rep.email)
    page = client.get(f"/accounts/{mlr.hcp.id}/meetings/new")
    assert 'id="no-consent"' in page.text
    assert f'action="/accounts/{mlr.hcp.id}/meetings"' not in page.text


def test_a_planned_call_of_the_plan_becomes_the_meeting(session, mlr):
    from parcours.activities import service as activities

    consent_to_meetings(session, mlr.hcp)
    other = create_hcp(session, mlr.territory)
    with acting(session, mlr.rep):
        planned = activities.create_activity(
            session,
            mlr.rep,
            account_ids=[mlr.hcp.id],
            channel="field_visit",
            start_at=datetime.now(UTC) + timedelta(days=1),
            status="planned",
        )
        elsewhere = activities.create_activity(
            session,
            mlr.rep,
            account_ids=[other.id],
            channel="field_visit",
            start_at=datetime.now(UTC) + timedelta(days=1),
            status="planned",
        )
        with pytest.raises(Invalid, match="another HCP") as refused:
            schedule(session, mlr, call_id=elsewhere.id)
        assert refused.value.errors[0]["field"] == "call_id"
        when = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
        m, _ = schedule(session, mlr, call_id=planned.id, starts_at=when, duration_min=20)
        assert m.activity_id == planned.id  # no second call on the agenda
        assert (planned.channel, planned.start_at, planned.duration_min) == (
            "remote_detailing",
            when,
            20,
        )
        with pytest.raises(Conflict, match="already has its meeting"):
            schedule(session, mlr, call_id=planned.id)
    assert service.for_call(session, planned.id) == m


def test_the_call_form_offers_to_hold_a_planned_call_remotely(client, session, mlr):
    from parcours.activities import service as activities

    consent_to_meetings(session, mlr.hcp)
    with acting(session, mlr.rep):
        planned = activities.create_activity(
            session,
            mlr.rep,
            account_ids=[mlr.hcp.id],
            channel="field_visit",
            start_at=datetime.now(UTC) + timedelta(days=1),
            status="planned",
        )
    session.commit()
    login(client, mlr.rep.email)
    link = f"/accounts/{mlr.hcp.id}/meetings/new?call={planned.id}"
    assert f'href="{link}"' in client.get(f"/calls/{planned.id}").text
    page = client.get(link)
    assert 'id="from-call"' in page.text and f'name="call_id" value="{planned.id}"' in page.text


def test_moving_or_cancelling_from_the_page_names_what_is_wrong(client, session, mlr, meeting):
    m, _ = meeting
    session.commit()
    login(client, mlr.rep.email)
    page = client.get(f"/meetings/{m.id}")
    token = page.text.split('name="_csrf" value="')[1].split('"')[0]
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    bad = client.post(
        f"/meetings/{m.id}/reschedule",
        data={"_csrf": token, "date": tomorrow, "time": "nine", "duration_min": "15"},
    )
    assert bad.status_code == 422 and "Choose a start" in bad.text
    short = client.post(
        f"/meetings/{m.id}/reschedule",
        data={"_csrf": token, "date": tomorrow, "time": "09:00", "duration_min": "2"},
    )
    assert short.status_code == 422 and 'id="duration_min-error"' in short.text
    session.expire_all()
    assert session.get(Meeting, m.id).sequence == 0  # nothing moved
    m.state = "live"
    session.commit()
    started = client.post(f"/meetings/{m.id}/cancel", data={"_csrf": token})
    assert started.status_code == 409 and "has not started" in started.text
