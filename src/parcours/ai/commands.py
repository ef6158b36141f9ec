"""`parcours insight …` and `parcours eval helpdesk`: add, scan, sync, rebuild, measure."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Insight search: documents and their indexes.", no_args_is_help=True)


def _user(session, email: str | None):
    from sqlalchemy import select

    from parcours.core.models import Role, User

    if email:
        user = session.scalars(select(User).where(User.email == email.lower())).one_or_none()
        if user is None:
            typer.echo(f"No user has the email {email}.", err=True)
            raise typer.Exit(2)
        return user
    user = session.scalars(select(User).where(User.role == Role.admin).order_by(User.id)).first()
    if user is None:
        typer.echo("No admin exists yet: give --as EMAIL.", err=True)
        raise typer.Exit(2)
    return user


def warm() -> None:
    """Load the embedding model (a server does it at start, in the background)."""
    import logging

    try:
        from parcours.ai import embed

        embed.passages(["warm up"])
    except Exception as exc:  # noqa: BLE001 - a failure shows again, with its cause, on use
        logging.getLogger(__name__).warning("embedding model not loaded: %s", exc)


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


@app.command("add")
def add(
    paths: Annotated[list[Path], typer.Argument(help="Files to add (each on its own).")],
    roles: Annotated[str, typer.Option(help="Roles that may read, comma-separated.")] = "",
    groups: Annotated[str, typer.Option(help="Groups that may read.")] = "",
    countries: Annotated[str, typer.Option(help="Countries (ISO codes) they must be in.")] = "",
    everyone: Annotated[bool, typer.Option(help="Every user may read.")] = False,
    category: Annotated[str, typer.Option()] = "",
    product: Annotated[str, typer.Option()] = "",
    as_user: Annotated[str, typer.Option("--as", help="Who adds them (email).")] = "",
) -> None:
    """Add files and index them now; a file that cannot be read is reported, the rest go on."""
    from parcours.ai import service
    from parcours.core import audit
    from parcours.core.db import new_session
    from parcours.core.errors import DomainError

    if not (roles or groups or everyone):
        typer.echo("Say who may read: --roles, --groups or --everyone.", err=True)
        raise typer.Exit(2)
    failures = 0
    for path in paths:
        with new_session() as session, session.begin():
            user = _user(session, as_user)
            audit.bind_actor(session, user.id, f"cli:{user.email}")
            try:
                data = path.read_bytes()
                doc, _ = service.add_file(
                    session,
                    user,
                    path.name,
                    data,
                    acl=service.Acl.of(_split(roles), _split(groups), (), _split(countries)),
                    meta=service.Meta(category=category or None, product=product or None),
                )
                doc = service.index_now(session, doc.id)
            except (DomainError, OSError) as exc:
                failures += 1
                typer.echo(f"{path}: refused: {getattr(exc, 'detail', None) or exc}", err=True)
                continue
            if doc.state == "failed":
                failures += 1
                typer.echo(f"{path}: failed: {doc.error}", err=True)
            else:
                typer.echo(f"{path}: {doc.pages} pages, {doc.chunks} passages (document {doc.id})")
    if failures == len(paths):
        raise typer.Exit(1)


@app.command("groups")
def groups(
    email: str,
    names: Annotated[str, typer.Argument(help="The user's groups, comma-separated; '' for none.")],
) -> None:
    """Set a user's groups (document access lists can name groups: hr, brand-oncology…)."""
    from parcours.ai import service
    from parcours.core import audit
    from parcours.core.db import new_session
    from parcours.core.errors import DomainError

    with new_session() as session, session.begin():
        user = _user(session, email)
        audit.bind_actor(session, None, "cli")
        try:
            kept = service.set_groups(session, user.id, _split(names))
        except DomainError as exc:
            typer.echo(f"error: {exc.detail}", err=True)
            raise typer.Exit(2) from None
    typer.echo(f"{email}: {', '.join(kept) or 'no group'}")


@app.command("scan")
def scan(folder: Annotated[Path | None, typer.Argument()] = None) -> None:
    """Index the watched folder's new and changed files now, drop deleted ones."""
    from parcours.ai import sources
    from parcours.core import jobs
    from parcours.core.db import new_session
    from parcours.core.settings import get_settings

    folder = folder or get_settings().insight_watch_dir
    if folder is None:
        typer.echo("Give a folder, or set PARCOURS_INSIGHT_WATCH_DIR.", err=True)
        raise typer.Exit(2)
    with new_session() as session, session.begin():
        summary = sources.scan_folder(session, folder)
    jobs.run_pending()
    _summary(summary)


def _summary(summary) -> None:
    typer.echo(
        f"added {summary.added}, changed {summary.updated}, removed {summary.removed},"
        f" unchanged {summary.unchanged}, failed {len(summary.failed)}"
    )
    for name, reason in summary.failed:
        typer.echo(f"  {name}: {reason}", err=True)


@app.command("sharepoint")
def sharepoint_sync() -> None:
    """Follow the configured SharePoint/OneDrive drives now (Microsoft Graph delta)."""
    from parcours.ai import sharepoint, sources
    from parcours.core import jobs
    from parcours.core.db import new_session
    from parcours.core.settings import get_settings

    if not sharepoint.configured(get_settings()):
        typer.echo(
            "SharePoint is not configured: set PARCOURS_GRAPH_TENANT_ID, _CLIENT_ID,"
            " _CLIENT_SECRET and _DRIVES (docs/insight-sharepoint.md).",
            err=True,
        )
        raise typer.Exit(2)
    with new_session() as session, session.begin():
        results = sources.sync_sharepoint(session)
    jobs.run_pending()
    for drive, summary in results.items():
        typer.echo(f"{drive}:")
        _summary(summary)


@app.command("reindex")
def reindex() -> None:
    """Rebuild both indexes from the passages in the database (vectors computed again)."""
    from parcours.ai import service
    from parcours.core.db import new_session

    def progress(done: int, total: int) -> None:
        print(f"\r{done}/{total} passages", end="", file=sys.stderr, flush=True)

    with new_session(write=False) as session:
        n = service.reindex_all(session, progress)
    print(file=sys.stderr)
    typer.echo(f"{n} passages indexed")


@dataclass
class HelpdeskReport:
    total: int = 0
    correct: int = 0
    rows: list[dict] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.correct / self.total if self.total else 0.0


def load_questions(path: Path) -> list[dict]:
    """{"question": …, "expect": ["words the answer must hold", …] or "handover"} per line."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path.name} line {number}: not JSON ({exc.msg})") from None
        expect = item.get("expect") if isinstance(item, dict) else None
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("question"), str)
            or not (expect == "handover" or (isinstance(expect, list) and expect))
        ):
            raise ValueError(
                f'{path.name} line {number}: expected {{"question": "…", "expect": [...] or'
                ' "handover"}'
            )
        out.append(item)
    if not out:
        raise ValueError(f"{path.name}: no question")
    return out


def helpdesk_report(session, user, questions: list[dict]) -> HelpdeskReport:
    """Ask each question of the help desk (nothing is kept) and mark it right when it hands
    over as expected, or answers with every expected word."""
    from parcours.ai import assistant, text

    report = HelpdeskReport()
    for item in questions:
        with session.begin_nested() as nested:
            record = assistant.ask(session, user, item["question"], assistant="helpdesk")
            outcome, answer = record.outcome, record.answer or ""
            nested.rollback()
        if item["expect"] == "handover":
            right = outcome == "handover"
        else:
            folded = text.fold(answer)
            right = outcome == "answered" and all(text.fold(w) in folded for w in item["expect"])
        report.total += 1
        report.correct += right
        report.rows.append(
            {"question": item["question"], "outcome": outcome, "right": right, "answer": answer}
        )
    return report


def eval_helpdesk(
    questions: Annotated[Path, typer.Option(help="JSON lines: question and expected answer.")],
    as_user: Annotated[str, typer.Option("--as", help="Ask as this user (email).")] = "",
    show: Annotated[bool, typer.Option(help="Print every question and answer.")] = False,
) -> None:
    """The share of help-desk questions answered correctly (or rightly handed over)."""
    from parcours.core.db import new_session

    try:
        items = load_questions(questions)
    except (OSError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    with new_session() as session:
        user = _user(session, as_user)
        report = helpdesk_report(session, user, items)
        session.rollback()
    for row in report.rows if show else [r for r in report.rows if not r["right"]]:
        mark = "ok " if row["right"] else "NO "
        typer.echo(f"{mark}{row['outcome']:9} {row['question']}")
        if show or not row["right"]:
            typer.echo(f"             {row['answer'][:200]}")
    typer.echo(f"help desk: {report.correct}/{report.total} right ({report.share:.0%}); target 80%")
