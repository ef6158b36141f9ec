"""The room's WebSocket: tickets, the waiting room, relaying only between people in the room,
slides checked and sent to everyone, removal and the end. Real sockets through the app."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from parcours.consent.models import ConsentRecord
from parcours.core import audit, db
from parcours.meetings import room, service
from parcours.meetings.models import Meeting, MeetingQuality

from content_factories import approved_version, build_mlr


@pytest.fixture
def scene(committed_db):
    with db.new_session() as s, s.begin():
        audit.bind_actor(s, None, "test")
        mlr = build_mlr(s)
        mlr.rep.country = "FR"
        s.add(
            ConsentRecord(
                account_id=mlr.hcp.id,
                channel="remote_meeting",
                status="opted_in",
                source="signed_in_person",
                captured_at=datetime.now(UTC) - timedelta(minutes=1),
            )
        )
        s.flush()
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
            host.send_json({"type": "end"})
            assert until(host, "ended") == {"type": "ended"}
        assert until(guest, "ended") == {"type": "ended"}
    with db.new_session(write=False) as s:
        assert s.get(Meeting, ids["meeting"]).state == "ended"
    assert client.get(f"/m/{ids['token']}").status_code == 404
