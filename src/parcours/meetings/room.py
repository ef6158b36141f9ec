"""The meeting room's server side: a WebSocket per page, signalling and slide sync.

The server never carries audio or video: browsers connect peer to peer (WebRTC, DTLS-SRTP)
and the server only relays their offers, answers and ICE candidates, between people of the
same meeting who are in the room. It also keeps who waits and who is in, the host's
orders, and the slide shown, which it sends to everyone in the room. Room state lives in
this process (run `parcours serve` with one worker process for meetings); what must last
(admissions, refusals, removals, locks, times, slides shown) is written to the database.

Messages are JSON objects with a "type"; anything else, or anything too big, is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import weakref
from dataclasses import dataclass, field
from datetime import UTC, datetime

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from parcours.content import service as content
from parcours.content.models import REACTIONS, ContentVersion
from parcours.core import audit
from parcours.core.db import new_session
from parcours.core.errors import DomainError
from parcours.core.models import User
from parcours.meetings import service
from parcours.meetings.models import Meeting, MeetingAttendee, MeetingQuality

log = logging.getLogger("parcours.meetings")
router = APIRouter()
MAX_MESSAGE = 64 * 1024
HOST = "host"
RECHECK_S = 10.0  # a version on screen is checked again this often (withdrawal, expiry)
FLUSH_S = 2.0  # slides shown are recorded in batches this often
STATS = ("rtt_ms", "jitter_ms", "loss_pct", "bitrate_kbps", "width", "height")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Slide:
    version_id: int
    page: int
    seq: int
    started: datetime
    reaction: str | None = None  # the HCP's reaction, as the host notes it


@dataclass
class Room:
    meeting_id: int
    host: WebSocket | None = None
    guests: dict[int, WebSocket] = field(default_factory=dict)  # waiting or in the room
    admitted: set[int] = field(default_factory=set)
    names: dict[int, str] = field(default_factory=dict)
    slide: Slide | None = None
    seq: int = 0
    shown: set[int] = field(default_factory=set)  # versions shown: guests may load their pages
    checked: dict[int, tuple[int, float]] = field(default_factory=dict)  # version: pages, when

    def peers_in(self) -> list[str]:
        out = [HOST] if self.host is not None else []
        return out + [f"a{a}" for a in sorted(self.admitted) if a in self.guests]

    def socket(self, peer: str) -> WebSocket | None:
        if peer == HOST:
            return self.host
        if peer.startswith("a") and peer[1:].isdigit() and int(peer[1:]) in self.admitted:
            return self.guests.get(int(peer[1:]))
        return None


ROOMS: dict[int, Room] = {}
# slides shown and replaced, (meeting, slide, ended), recorded every FLUSH_S in one go
PENDING: list[tuple[int, Slide, datetime]] = []
_flusher: asyncio.Task | None = None


def room_for(meeting_id: int) -> Room:
    return ROOMS.setdefault(meeting_id, Room(meeting_id))


def shown_in_room(meeting_id: int, version_id: int) -> bool:
    """May a guest of this meeting load this version's pages (it was put on screen)?"""
    room = ROOMS.get(meeting_id)
    return room is not None and version_id in room.shown


async def _send(ws: WebSocket | None, message: dict) -> None:
    if ws is None:
        return
    with contextlib.suppress(Exception):  # a page that went away is cleaned up by its reader
        await ws.send_text(json.dumps(message))


async def _to_room(room: Room, message: dict, *, but: str | None = None) -> None:
    await asyncio.gather(*(_send(room.socket(p), message) for p in room.peers_in() if p != but))


def _db(fn, *args, background: bool = False):
    """Run fn(session, *args) in a worker thread, in one committed transaction.

    background: work nobody waits for (rechecks, recording slides) goes through one thread
    at a time, so that it never crowds the event loop out of the interpreter."""

    def work():
        with new_session() as session, session.begin():
            audit.bind_actor(session, None, "meeting room")
            return fn(session, *args)

    return to_thread.run_sync(work, limiter=_background() if background else None)


_LIMITERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _background() -> CapacityLimiter:
    """One limiter per event loop (a test client runs a loop of its own)."""
    loop = asyncio.get_running_loop()
    if loop not in _LIMITERS:
        _LIMITERS[loop] = CapacityLimiter(1)
    return _LIMITERS[loop]


# ---------------------------------------------------------------- database steps


def _host_user(session, meeting_id: int) -> tuple[User, Meeting]:
    meeting = session.get(Meeting, meeting_id)
    user = session.get(User, meeting.host_id)
    audit.bind_actor(session, user.id, user.email)
    return user, meeting


def _roster(session, meeting_id: int) -> dict:
    meeting = session.get(Meeting, meeting_id)
    people = [
        {"id": a.id, "name": a.display_name, "state": a.state}
        for a in service.attendees(session, meeting_id)
    ]
    return {"type": "roster", "attendees": people, "locked": meeting.locked, "state": meeting.state}


def _guest_arrives(session, meeting_id: int, attendee_id: int) -> tuple[str, str]:
    att = session.get(MeetingAttendee, attendee_id, with_for_update=True)
    meeting = session.get(Meeting, meeting_id)
    audit.bind_actor(session, None, f"HCP {att.account_id} (meeting link)")
    if meeting.state in ("ended", "cancelled"):
        return "ended", att.display_name
    try:
        service.enter_waiting_room(session, att, meeting)
    except DomainError as exc:
        return ("locked" if exc.status == 409 else "refused"), att.display_name
    return att.state, att.display_name


def _host_order(session, meeting_id: int, order: str, attendee_id: int) -> str:
    user, _meeting = _host_user(session, meeting_id)
    fn = {"admit": service.admit, "refuse": service.refuse, "remove": service.remove}[order]
    return fn(session, user, meeting_id, attendee_id).state


def _lock(session, meeting_id: int, locked: bool) -> None:
    user, _meeting = _host_user(session, meeting_id)
    service.set_lock(session, user, meeting_id, locked)


def _start(session, meeting_id: int) -> None:
    service.start(session, session.get(Meeting, meeting_id))


def _check_slide(session, meeting_id: int, version_id: int) -> int:
    """The full check (approved, valid today, signatures intact, every HCP's country): the
    version's page count, or a DomainError."""
    user, meeting = _host_user(session, meeting_id)
    return service.presentable_for(session, user, meeting, version_id).page_count or 1


def _record(session, shown: list[tuple[int, Slide, datetime]]) -> None:
    by_meeting: dict[int, list] = {}
    for meeting_id, slide, ended in shown:
        by_meeting.setdefault(meeting_id, []).append(
            (slide.seq, slide.version_id, slide.page, slide.started, ended, slide.reaction)
        )
    for meeting_id, rows in by_meeting.items():
        user, meeting = _host_user(session, meeting_id)
        service.record_slides(session, user, meeting, rows)


def _end(session, meeting_id: int) -> None:
    user, _meeting = _host_user(session, meeting_id)
    service.end(session, user, meeting_id)


def _guest_left(session, attendee_id: int) -> None:
    audit.bind_actor(session, None, "meeting room")
    service.left(session, attendee_id)


def _stats(session, meeting_id: int, peer: str, values: dict) -> None:
    row = {k: values.get(k) for k in STATS}
    clean = {
        k: float(v) if k not in ("width", "height") else int(v)
        for k, v in row.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1e7
    }
    session.add(MeetingQuality(meeting_id=meeting_id, peer=peer, **clean))


# ---------------------------------------------------------------- the socket


@router.websocket("/ws/meetings/{meeting_id}")
async def meeting_socket(websocket: WebSocket, meeting_id: int, ticket: str = ""):
    try:
        peer, ticket_meeting = service.read_ticket(ticket)
    except DomainError:
        await websocket.close(code=4401)
        return
    if ticket_meeting != meeting_id:
        await websocket.close(code=4401)
        return
    await websocket.accept()
    room = room_for(meeting_id)
    if peer == HOST:
        await _host(websocket, room)
    elif peer.startswith("a") and peer[1:].isdigit():
        await _guest(websocket, room, int(peer[1:]))
    else:
        await websocket.close(code=4401)


async def _messages(websocket: WebSocket):
    while True:
        try:
            text = await websocket.receive_text()
        except (WebSocketDisconnect, RuntimeError):
            return
        if len(text) > MAX_MESSAGE:
            continue
        try:
            message = json.loads(text)
        except ValueError:
            continue
        if isinstance(message, dict) and isinstance(message.get("type"), str):
            yield message


async def _roster_to_host(room: Room) -> None:
    await _send(room.host, await _db(_roster, room.meeting_id))


async def _host(websocket: WebSocket, room: Room) -> None:
    if room.host is not None:
        await _send(room.host, {"type": "replaced"})  # the host opened the room elsewhere
        with contextlib.suppress(Exception):
            await room.host.close(code=4409)
    room.host = websocket
    await _db(_start, room.meeting_id)
    await _roster_to_host(room)
    # the newcomer calls: the host calls whoever is already in the room
    guests = [p for p in room.peers_in() if p != HOST]
    await _send(websocket, {"type": "admitted", "you": HOST, "peers": guests})
    await _to_room(room, {"type": "peer-joined", "peer": HOST}, but=HOST)
    if room.slide:
        await _send(websocket, _slide_message(room.slide))
    try:
        async for message in _messages(websocket):
            await _host_message(room, message)
            if message["type"] == "end":
                return
    finally:
        if room.host is websocket:
            room.host = None
            await _to_room(room, {"type": "peer-left", "peer": HOST})


def _slide_message(slide: Slide) -> dict:
    return {"type": "slide", "version_id": slide.version_id, "page": slide.page}


async def _host_message(room: Room, message: dict) -> None:
    kind = message["type"]
    if kind == "signal":
        await _relay(room, HOST, message)
    elif kind in ("admit", "refuse", "remove") and isinstance(message.get("attendee"), int):
        await _order(room, kind, message["attendee"])
    elif kind == "lock":
        await _db(_lock, room.meeting_id, bool(message.get("locked")))
        await _roster_to_host(room)
    elif kind == "present":
        await _present(room, message)
    elif kind == "prepare" and isinstance(message.get("version_id"), int):
        known = room.checked.get(message["version_id"])
        if known is None or time.monotonic() - known[1] > RECHECK_S:
            await _check(room, message["version_id"])
            known = room.checked.get(message["version_id"])
        if known:
            await _send(
                room.host,
                {"type": "prepared", "version_id": message["version_id"], "pages": known[0]},
            )
    elif kind == "react" and message.get("reaction") in (*REACTIONS, None):
        if room.slide is not None:
            room.slide.reaction = message.get("reaction")
            await _send(room.host, {"type": "reacted", "reaction": room.slide.reaction})
    elif kind == "mute" and isinstance(message.get("peer"), str):
        await _send(room.socket(message["peer"]), {"type": "mute"})
    elif kind == "stats":
        await _db(_stats, room.meeting_id, HOST, message)
    elif kind == "end":
        await _end_meeting(room)


async def _order(room: Room, order: str, attendee_id: int) -> None:
    try:
        state = await _db(_host_order, room.meeting_id, order, attendee_id)
    except DomainError as exc:
        await _send(room.host, {"type": "error", "message": exc.detail})
        return
    guest = room.guests.get(attendee_id)
    if state == "admitted":
        room.admitted.add(attendee_id)
        peer = f"a{attendee_id}"
        others = [p for p in room.peers_in() if p != peer]
        await _send(guest, {"type": "admitted", "you": peer, "peers": others})
        if room.slide:
            await _send(guest, _slide_message(room.slide))
        await _to_room(
            room,
            {"type": "peer-joined", "peer": peer, "name": room.names.get(attendee_id)},
            but=peer,
        )
    else:  # refused or removed: told, then disconnected
        was_in = attendee_id in room.admitted
        room.admitted.discard(attendee_id)
        await _send(guest, {"type": state})
        if guest is not None:
            with contextlib.suppress(Exception):
                await guest.close(code=4403)
        if was_in:
            await _to_room(room, {"type": "peer-left", "peer": f"a{attendee_id}"})
    await _roster_to_host(room)


async def _check(room: Room, version_id: int) -> int | None:
    """The full check of a version for this room (approved, valid today, signatures intact,
    every HCP's country), cached; its page count, or None (the host is told why)."""
    try:
        pages = await _db(_check_slide, room.meeting_id, version_id)
    except DomainError as exc:
        room.checked.pop(version_id, None)
        await _send(room.host, {"type": "error", "message": exc.detail})
        return None
    room.checked[version_id] = (pages, time.monotonic())
    return pages


def _still_in_force(session, version_id: int) -> bool:
    """The light check made while a version is on screen: still approved, inside its dates,
    not replaced (the signatures over the files were checked when the room first showed it)."""
    version = session.get(ContentVersion, version_id)
    day = content.today()
    return (
        version is not None
        and content.is_valid_on(version, day)
        and not content.replaced_on(session, version, day)
    )


async def _recheck(room: Room, version_id: int) -> None:
    """Checked again while the room goes on; a version withdrawn or expired meanwhile is
    taken off every screen at once."""
    if await _db(_still_in_force, version_id, background=True):
        return
    room.checked.pop(version_id, None)
    await _send(room.host, {"type": "error", "message": "This content can no longer be shown."})
    if room.slide and room.slide.version_id == version_id:
        _later(room.meeting_id, room.slide, _now())
        room.slide = None
        await _to_room(room, {"type": "slide-stopped"})


async def _present(room: Room, message: dict) -> None:
    """Show a slide to everyone. A version new to the room is checked first (the host page
    asks for that as soon as a deck is chosen: "prepare"); one checked more than RECHECK_S
    ago (as often as the in-person player asks) is shown and checked again alongside. The
    slide it replaces is recorded a moment later, with others, off the way."""
    version_id, page = message.get("version_id"), message.get("page")
    if not isinstance(version_id, int) or not isinstance(page, int):
        return
    known = room.checked.get(version_id)
    if known is None:
        if await _check(room, version_id) is None:
            return
        known = room.checked[version_id]
    elif time.monotonic() - known[1] > RECHECK_S:
        room.checked[version_id] = (known[0], time.monotonic())  # one recheck at a time
        asyncio.create_task(_recheck(room, version_id))
    if not 1 <= page <= known[0]:
        await _send(room.host, {"type": "error", "message": f"This content has {known[0]} pages."})
        return
    now = _now()
    ended, room.seq = room.slide, room.seq + 1
    room.slide = Slide(version_id, page, room.seq, now)
    room.shown.add(version_id)
    await _to_room(room, _slide_message(room.slide))
    if ended is not None:
        _later(room.meeting_id, ended, now)


def _later(meeting_id: int, slide: Slide, ended: datetime) -> None:
    global _flusher
    PENDING.append((meeting_id, slide, ended))
    stale = _flusher is not None and _flusher.get_loop() is not asyncio.get_running_loop()
    if _flusher is None or _flusher.done() or stale:
        _flusher = asyncio.create_task(_flush())


async def _flush() -> None:
    """Every FLUSH_S, the slides of every room in one transaction, while any wait."""
    while PENDING:
        await asyncio.sleep(FLUSH_S)
        shown = PENDING[:]
        del PENDING[: len(shown)]
        try:
            await _db(_record, shown, background=True)
        except Exception:
            log.exception("meeting rooms: %d slides not recorded", len(shown))


async def _end_meeting(room: Room) -> None:
    if room.slide is not None:
        PENDING.append((room.meeting_id, room.slide, _now()))
        room.slide = None
    shown = [p for p in PENDING if p[0] == room.meeting_id]
    if shown:
        PENDING[:] = [p for p in PENDING if p[0] != room.meeting_id]
        await _db(_record, shown)  # an event id is stored once: no double
    await _db(_end, room.meeting_id)
    for ws in [room.host, *room.guests.values()]:
        await _send(ws, {"type": "ended"})
    for ws in list(room.guests.values()):
        with contextlib.suppress(Exception):
            await ws.close(code=4000)
    ROOMS.pop(room.meeting_id, None)


async def _guest(websocket: WebSocket, room: Room, attendee_id: int) -> None:
    state, name = await _db(_guest_arrives, room.meeting_id, attendee_id)
    if state in ("ended", "refused", "locked"):
        await _send(websocket, {"type": state})
        await websocket.close(code=4403)
        return
    previous = room.guests.get(attendee_id)
    if previous is not None and previous is not websocket:
        with contextlib.suppress(Exception):
            await previous.close(code=4409)  # the same person opened the link again
    room.guests[attendee_id] = websocket
    room.names[attendee_id] = name
    peer = f"a{attendee_id}"
    if state == "admitted":
        room.admitted.add(attendee_id)
        others = [p for p in room.peers_in() if p != peer]
        await _send(websocket, {"type": "admitted", "you": peer, "peers": others})
        if room.slide:
            await _send(websocket, _slide_message(room.slide))
        await _to_room(room, {"type": "peer-joined", "peer": peer, "name": name}, but=peer)
    else:
        await _send(websocket, {"type": "waiting"})
    await _roster_to_host(room)
    try:
        async for message in _messages(websocket):
            if attendee_id not in room.admitted:
                continue  # in the waiting room nothing is relayed
            if message["type"] == "signal":
                await _relay(room, peer, message)
            elif message["type"] == "stats":
                await _db(_stats, room.meeting_id, peer, message)
    finally:
        if room.guests.get(attendee_id) is websocket:
            del room.guests[attendee_id]
            was_in = attendee_id in room.admitted
            room.admitted.discard(attendee_id)
            if room.meeting_id in ROOMS:
                await _db(_guest_left, attendee_id)
                if was_in:
                    await _to_room(room, {"type": "peer-left", "peer": peer})
                await _roster_to_host(room)


async def _relay(room: Room, sender: str, message: dict) -> None:
    """An offer, answer or ICE candidate, to one peer of the room (nobody else sees it)."""
    target = message.get("to")
    if not isinstance(target, str) or target == sender or sender not in room.peers_in():
        return
    await _send(
        room.socket(target), {"type": "signal", "from": sender, "data": message.get("data")}
    )
