"""The room's WebSocket: tickets, the waiting room, relaying only between people in the room,
slides checked and sent to everyone, removal and the end. Real sockets through the app."""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from parcours.core import audit, db
from parcours.meetings import room, service
from parcours.meetings.models import Meeting, MeetingAttendee, MeetingQuality

from content_factories import approved_version, build_mlr
from factories import consent_to_remote_meetings, login


@pytest.fixture
def scene(committed_db):
    with db.new_session() as s, s.begin():
        audit.bind_actor(s, None, "test")
        mlr = build_mlr(s)
        mlr.rep.country = "FR"
        consent_to_remote_meetings(s, mlr.hcp.id)
        deck = approved_version(s, mlr, pages=2)
        meeting, codes = service.schedule(
            s, mlr.rep, account_ids=[mlr.hcp.id], starts_at=datetime.now(UTC)
        )
        [att] = service.attendees(s, meeting.id)
        ids = {
            "meeting": meeting.id,
            "attendee": att.id,
            "deck": deck.id,
            "token": service.link_token(att),
            "admin": mlr.admin.email,
            "rep": mlr.rep.email,
        }
    from parcours.app import create_app

    room.ROOMS.clear()
    with TestClient(create_app(), base_url="http://testserver") as client:
        yield client, ids
    room.ROOMS.clear()


def host_url(ids) -> str:
    return f"/ws/meetings/{ids['meeting']}?ticket={service.ticket('host', ids['meeting'])}"


def guest_url(ids) -> str:
    peer = f"a{ids['attendee']}"
    return f"/ws/meetings/{ids['meeting']}?ticket={service.ticket(peer, ids['meeting'])}"


@contextmanager
def in_room(client, ids):
    """The HCP waits, the host comes in and admits them: (host, guest) sockets."""
    with client.websocket_connect(guest_url(ids)) as guest:
        until(guest, "waiting")
        with client.websocket_connect(host_url(ids)) as host:
            until(host, "roster")
            host.send_json({"type": "admit", "attendee": ids["attendee"]})
            until(guest, "admitted")
            yield host, guest


def until(ws, kind: str, limit: int = 10) -> dict:
    for _ in range(limit):
        message = ws.receive_json()
        if message["type"] == kind:
            return message
    raise AssertionError(f"no {kind} message")


@pytest.mark.parametrize(
    "ticket",
    ["", "host.1.1.abc", "host.1.99999999999.0123456789abcdef0123456789abcdef", "x" * 300],
)
def test_a_socket_without_a_valid_ticket_is_closed(scene, ticket):
    client, ids = scene
    assert closed_with(client, f"/ws/meetings/{ids['meeting']}?ticket={ticket}") == 4401


def closed_with(client, url: str) -> int:
    try:
        with client.websocket_connect(url) as ws:
            ws.receive_json()
    except WebSocketDisconnect as exc:
        return exc.code
    raise AssertionError("the socket stayed open")


def test_a_ticket_for_another_meeting_is_refused(scene):
    client, ids = scene
    other = service.ticket("host", ids["meeting"] + 1)
    assert closed_with(client, f"/ws/meetings/{ids['meeting']}?ticket={other}") == 4401


def test_waiting_admitted_signals_slides_removal(scene):
    client, ids = scene
    peer = f"a{ids['attendee']}"
    with client.websocket_connect(guest_url(ids)) as guest:
        assert guest.receive_json() == {"type": "waiting"}
        with client.websocket_connect(host_url(ids)) as host:
            roster = until(host, "roster")
            assert [a["state"] for a in roster["attendees"]] == ["waiting"]
            # in the waiting room nothing is relayed
            guest.send_json({"type": "signal", "to": "host", "data": {"sdp": "x"}})
            host.send_json({"type": "admit", "attendee": ids["attendee"]})
            assert until(guest, "admitted") == {"type": "admitted", "you": peer, "peers": ["host"]}
            guest.send_json({"type": "signal", "to": "host", "data": {"sdp": "offer"}})
            assert until(host, "signal") == {
                "type": "signal",
                "from": peer,
                "data": {"sdp": "offer"},
            }
            host.send_json({"type": "signal", "to": peer, "data": {"candidate": "c"}})
            assert until(guest, "signal")["data"] == {"candidate": "c"}
            host.send_text("{not json")
            host.send_text(json.dumps({"type": "signal", "to": peer, "data": "x" * 70_000}))

            # a slide: refused when the page is out of range, sent to all when it is fine
            host.send_json({"type": "present", "version_id": ids["deck"], "page": 9})
            assert "pages" in until(host, "error")["message"]
            host.send_json({"type": "present", "version_id": ids["deck"] + 99, "page": 1})
            assert until(host, "error")["message"]  # not approved content: refused
            slide_url = f"/m/{ids['token']}/slides/{ids['deck']}/1.jpg"
            assert client.get(slide_url).status_code == 404  # not shown yet
            host.send_json({"type": "present", "version_id": ids["deck"], "page": 1})
            slide = {"type": "slide", "version_id": ids["deck"], "page": 1}
            assert until(guest, "slide") == slide and until(host, "slide") == slide
            shown = client.get(slide_url)
            assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
            assert (
                client.get(f"/m/{ids['token']}/slides/{ids['deck'] + 1}/1.jpg").status_code == 404
            )

            host.send_json({"type": "react", "reaction": "positive"})
            assert until(host, "reacted") == {"type": "reacted", "reaction": "positive"}
            host.send_json({"type": "react", "reaction": "delighted"})  # not a reaction: ignored
            guest.send_json({"type": "stats", "rtt_ms": 12.5, "loss_pct": 0.0, "width": 640})
            host.send_json({"type": "remove", "attendee": ids["attendee"]})
            assert until(guest, "removed") == {"type": "removed"}
            roster = until(host, "roster")
            assert [a["state"] for a in roster["attendees"]] == ["removed"]
    with client.websocket_connect(guest_url(ids)) as again:
        assert again.receive_json() == {"type": "refused"}  # removed: not back in
    with db.new_session(write=False) as s:
        [q] = s.query(MeetingQuality).all()
        assert (q.peer, q.rtt_ms, q.width) == (peer, 12.5, 640)


def test_the_end_tells_everyone_and_closes_the_links(scene):
    client, ids = scene
    with client.websocket_connect(guest_url(ids)) as guest:
        until(guest, "waiting")
        with client.websocket_connect(host_url(ids)) as host:
            until(host, "roster")
            host.send_json({"type": "lock", "locked": True})
            assert until(host, "roster")["locked"] is True
            host.send_json({"type": "present", "version_id": ids["deck"], "page": 2})
            until(host, "slide")
            host.send_json({"type": "react", "reaction": "negative"})
            until(host, "reacted")
            host.send_json({"type": "end"})
            assert until(host, "ended") == {"type": "ended"}
        assert until(guest, "ended") == {"type": "ended"}
    with db.new_session(write=False) as s:
        meeting = s.get(Meeting, ids["meeting"])
        assert meeting.state == "ended"
        from parcours.content import clm

        views = clm.views_for_call(s, meeting.activity_id)
        assert [(v.page, v.reaction) for v in views] == [(2, "negative")]
    assert client.get(f"/m/{ids['token']}").status_code == 404


def test_operations_see_live_meetings_and_their_quality_flagged(scene):
    client, ids = scene
    with in_room(client, ids) as (host, guest):
        guest.send_json({"type": "stats", "rtt_ms": 480.0, "loss_pct": 9.5, "width": 320})
        host.send_json({"type": "stats", "rtt_ms": 20.0, "loss_pct": 0.0, "bitrate_kbps": 900})
        host.send_json({"type": "lock", "locked": True})
        until(host, "roster")  # after the stats: they are written by now
        login(client, ids["admin"])
        page = client.get("/meetings/live")
        assert page.status_code == 200 and 'data-bad="true"' in page.text
        assert "480.0 ms" in page.text and "Poor" in page.text
        history = client.get(f"/meetings/{ids['meeting']}/quality")
        assert history.status_code == 200 and history.text.count("row-flagged") == 1
        client.get("/logout")
        login(client, ids["rep"])
        assert client.get("/meetings/live").status_code == 403  # managers and admins
        host.send_json({"type": "end"})
        until(host, "ended")
        until(guest, "ended")


def test_after_the_meeting_the_hcp_rates_it_once(scene):
    client, ids = scene
    with in_room(client, ids) as (host, guest):
        host.send_json({"type": "end"})
        until(host, "ended")
    page = client.get("/login")  # any page gives this browser its form token
    token = page.text.split('name="_csrf" value="')[1].split('"')[0]
    url = f"/m/{ids['token']}/rating"
    assert client.post(url, data={"_csrf": token, "rating": "9"}).status_code == 422
    assert client.post(url, data={"rating": "4"}).status_code == 403  # no form token
    done = client.post(url, data={"_csrf": token, "rating": "4"})
    assert done.status_code == 200 and 'id="rating-thanks"' in done.text
    assert client.post(url, data={"_csrf": token, "rating": "5"}).status_code == 409
    with db.new_session(write=False) as s:
        assert s.get(MeetingAttendee, ids["attendee"]).rating == 4


def test_content_withdrawn_while_on_screen_leaves_every_screen(scene, monkeypatch):
    from sqlalchemy import update

    from parcours.content.models import ContentVersion

    client, ids = scene
    monkeypatch.setattr(room, "RECHECK_S", 0.0)  # checked again at every slide
    with in_room(client, ids) as (host, guest):
        host.send_json({"type": "prepare", "version_id": ids["deck"]})
        assert until(host, "prepared")["pages"] == 2
        host.send_json({"type": "present", "version_id": ids["deck"], "page": 1})
        until(guest, "slide")
        with db.new_session() as s, s.begin():  # MLR withdraws it meanwhile
            s.execute(
                update(ContentVersion)
                .where(ContentVersion.id == ids["deck"])
                .values(state="withdrawn")
            )
        host.send_json({"type": "present", "version_id": ids["deck"], "page": 2})
        assert until(guest, "slide-stopped") == {"type": "slide-stopped"}
        assert "no longer" in until(host, "error")["message"]
        host.send_json({"type": "present", "version_id": ids["deck"], "page": 1})
        assert until(host, "error")["message"]  # checked in full again: refused
        host.send_json({"type": "end"})
        until(host, "ended")


def test_the_hcps_pages_speak_their_language(scene):
    from parcours.accounts.models import Account

    client, ids = scene
    with db.new_session() as s, s.begin():
        att = s.get(MeetingAttendee, ids["attendee"])
        s.get(Account, att.account_id).preferred_language = "fr"
    page = client.get(f"/m/{ids['token']}", headers={"accept-language": "en"})
    assert page.status_code == 200 and 'lang="fr"' in page.text
    assert "Rejoindre le rendez-vous" in page.text
