"""JSON routes for activities, call reports, amendments and tasks."""

from __future__ import annotations

from fastapi import APIRouter

from parcours.activities import service
from parcours.activities.schemas import (
    ActivityCreate,
    ActivityDetail,
    ActivityUpdate,
    AmendmentCreate,
    AmendmentRead,
    TaskCreate,
    TaskRead,
    TaskUpdate,
    activity_read,
)
from parcours.core.deps import ApiUser, SessionDep

router = APIRouter()


def detail(session, act) -> ActivityDetail:
    amends = service.amendments(session, act.id)
    eff = service.effective(act, amends)
    return activity_read(
        act,
        ActivityDetail,
        attendee_ids=[a.id for a in service.attendees(session, act.id)],
        amendments=[AmendmentRead.model_validate(a) for a in amends],
        effective=eff,
    )


@router.post("/activities", response_model=ActivityDetail, status_code=201, tags=["activities"])
def create_activity(body: ActivityCreate, user: ApiUser, session: SessionDep):
    act = service.create_activity(session, user, **body.model_dump())
    return detail(session, act)


@router.get("/activities/{activity_id}", response_model=ActivityDetail, tags=["activities"])
def get_activity(activity_id: int, user: ApiUser, session: SessionDep):
    return detail(session, service.get_activity(session, user, activity_id))


@router.patch("/activities/{activity_id}", response_model=ActivityDetail, tags=["activities"])
def update_activity(activity_id: int, body: ActivityUpdate, user: ApiUser, session: SessionDep):
    act = service.update_activity(session, user, activity_id, **body.model_dump(exclude_unset=True))
    return detail(session, act)


@router.post("/activities/{activity_id}/submit", response_model=ActivityDetail, tags=["activities"])
def submit_activity(activity_id: int, user: ApiUser, session: SessionDep):
    return detail(session, service.submit_activity(session, user, activity_id))


@router.post(
    "/activities/{activity_id}/amendments",
    response_model=AmendmentRead,
    status_code=201,
    tags=["activities"],
)
def amend_activity(activity_id: int, body: AmendmentCreate, user: ApiUser, session: SessionDep):
    amendment = service.amend_activity(
        session,
        user,
        activity_id,
        reason=body.reason,
        changes=body.changes.model_dump(exclude_unset=True),
    )
    return AmendmentRead.model_validate(amendment)


@router.get("/tasks", response_model=list[TaskRead], tags=["tasks"])
def list_tasks(user: ApiUser, session: SessionDep, account_id: int | None = None):
    return [
        TaskRead.model_validate(t) for t in service.open_tasks(session, user, account_id=account_id)
    ]


@router.post("/tasks", response_model=TaskRead, status_code=201, tags=["tasks"])
def create_task(body: TaskCreate, user: ApiUser, session: SessionDep):
    return TaskRead.model_validate(service.create_task(session, user, **body.model_dump()))


@router.patch("/tasks/{task_id}", response_model=TaskRead, tags=["tasks"])
def update_task(task_id: int, body: TaskUpdate, user: ApiUser, session: SessionDep):
    task = service.update_task(session, user, task_id, **body.model_dump(exclude_unset=True))
    return TaskRead.model_validate(task)
