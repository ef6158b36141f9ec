"""The parcours command line: serve, migrate, seed, audit verify, bench, create-user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from parcours.ai import commands as insight_commands
from parcours.core.settings import ROOT, get_settings

app = typer.Typer(help="parcours: omnichannel engagement for life sciences.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit trail.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks (JSON on stdout).", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(bench_app, name="bench")
app.add_typer(insight_commands.app, name="insight")


def _alembic_config(url: str | None = None):
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("sqlalchemy.url", url or get_settings().database_url)
    return cfg


@app.command()
def migrate(revision: str = "head") -> None:
    """Bring the database schema up to date (Alembic)."""
    from alembic import command

    command.upgrade(_alembic_config(), revision)
    typer.echo(f"database migrated to {revision}")


@app.command()
def seed(
    hcps: Annotated[int, typer.Option(min=1)] = 2000,
    reps: Annotated[int, typer.Option(min=1)] = 20,
    months: Annotated[int, typer.Option(min=1, max=60)] = 6,
    seed: Annotated[int, typer.Option("--seed")] = 42,
    if_empty: Annotated[bool, typer.Option(help="Do nothing when users already exist.")] = False,
    content: Annotated[bool, typer.Option(help="Add demo decks, rendered and reviewed.")] = True,
) -> None:
    """Load deterministic demo data (streams in batches; scales to millions of rows)."""
    from sqlalchemy import func, select

    from parcours import seed as seeding
    from parcours.core.db import get_engine
    from parcours.core.models import User

    engine = get_engine()
    with engine.connect() as conn:
        existing = conn.execute(select(func.count(User.id))).scalar()
    if existing and if_empty:
        typer.echo(
            "demo data already loaded; logins: admin@parcours.demo, manager@parcours.demo, "
            "rep@parcours.demo, marketing@parcours.demo, reviewer@parcours.demo, "
            "reviewer.legal@parcours.demo, reviewer.regulatory@parcours.demo "
            "(password as printed when it was loaded, or PARCOURS_DEMO_PASSWORD)"
        )
        return
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] > 1 or done == total:
            last[0] = now
            pct = 100 * done / total if total else 100
            typer.echo(f"  {stage:<12} {done:>12,}/{total:,} ({pct:5.1f}%)", err=True)

    result = seeding.run(engine, hcps=hcps, reps=reps, months=months, seed=seed, progress=progress)
    typer.echo(json.dumps({k: v for k, v in result.__dict__.items() if k != "password"}))
    if content:
        from parcours.seed import content as demo_content

        typer.echo("  content      rendering demo decks…", err=True)
        typer.echo(json.dumps({"content": demo_content.run(engine, result.password)}))
        from parcours.seed import consent as demo_consent

        typer.echo(json.dumps({"consent": demo_consent.run(engine)}))
        from parcours.seed import insight as demo_insight

        typer.echo("  insight      indexing demo studies and the help desk…", err=True)
        typer.echo(json.dumps({"insight": demo_insight.run(engine)}))
    typer.echo("\nDemo logins (password: " + result.password + ")")
    for email in (
        "admin@parcours.demo",
        "manager@parcours.demo",
        "rep@parcours.demo",
        "marketing@parcours.demo",
        "reviewer@parcours.demo (medical), reviewer.legal@…, reviewer.regulatory@…",
    ):
        typer.echo(f"  {email}")
    pw_file = ROOT / "var" / "demo-password"
    pw_file.parent.mkdir(parents=True, exist_ok=True)
    pw_file.write_text(result.password + "\n")
    pw_file.chmod(0o600)


@app.command()
def serve(
    host: str = "127.0.0.1", port: int = 8000, workers: int = 1, reload: bool = False
) -> None:
    """Serve the web application and the API (with a background worker unless disabled)."""
    import uvicorn

    settings = get_settings()
    if settings.embedded_worker and not reload:
        from parcours.core.jobs import Worker

        Worker(settings.worker_poll_s).start()
    if workers == 1 and not reload:
        import threading

        # the embedding model takes seconds to load: not on the first question
        threading.Thread(target=insight_commands.warm, daemon=True).start()
    uvicorn.run(
        "parcours.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        reload=reload,
        log_level="info",
        proxy_headers=True,
    )


@app.command()
def worker(once: Annotated[bool, typer.Option(help="Run due jobs and duties, then stop.")] = False):
    """Perform background jobs: rendering uploads, expiring content (runs until stopped)."""
    import logging

    from parcours.core import jobs

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if once:
        jobs.run_periodic()
        typer.echo(json.dumps({"jobs": jobs.run_pending(limit=None)}))
        return
    w = jobs.Worker(get_settings().worker_poll_s)
    w.start()
    try:
        while w.is_alive():
            w.join(1)
    except KeyboardInterrupt:
        w.stop()


@app.command()
def analytics(
    full: Annotated[bool, typer.Option(help="Rebuild every file instead of the changes.")] = False,
) -> None:
    """Bring the KPI snapshot up to date now (the worker does it every minute)."""
    from parcours.analytics import snapshot
    from parcours.core.db import get_engine

    with get_engine().connect() as db:
        result = snapshot.refresh(db, full=full)
    if result is None:
        typer.echo("Another refresh is running; try again in a moment.", err=True)
        raise typer.Exit(1)
    typer.echo(
        f"snapshot {'rebuilt' if result.full else 'updated'} in {result.seconds:.1f} s:"
        f" {result.touchpoints} touchpoints, months {', '.join(result.months) or 'none'},"
        f" dimensions {', '.join(result.dimensions) or 'none'}"
    )


@app.command("create-user")
def create_user(
    email: str,
    full_name: str,
    role: str,
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
) -> None:
    """Create a user directly (the first admin of a new installation)."""
    from parcours.core import audit
    from parcours.core.db import new_session
    from parcours.core.errors import DomainError
    from parcours.core.models import Role, User

    session = new_session()
    try:
        with audit.acting_as(None, "cli"):
            from parcours.core import users

            system = User(id=0, email="cli", full_name="cli", role=Role.admin, password_hash="")
            user = users.create_user(
                session, system, email=email, full_name=full_name, role=role, password=password
            )
            session.commit()
    except DomainError as exc:
        session.rollback()
        typer.echo(f"error: {exc.detail}", err=True)
        raise typer.Exit(2) from exc
    finally:
        session.close()
    typer.echo(f"user {user.id} created: {user.email} ({user.role})")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check the audit chain; exit 1 and list each altered, deleted or moved record."""
    from parcours.core import audit
    from parcours.core.db import new_session

    session = new_session(write=False)
    try:
        result = audit.verify(session)
    finally:
        session.close()
    count, problems = result
    if problems:
        typer.echo(f"audit chain BROKEN: {len(problems)} problem(s) in {count} records")
        for p in problems[:100]:
            typer.echo(f"  record #{p.seq}: {p.reason}")
        raise typer.Exit(1)
    redacted = f" ({result.redacted} redacted by GDPR erasures)" if result.redacted else ""
    typer.echo(f"audit chain intact: {count} records{redacted}")


@audit_app.command("head")
def audit_head() -> None:
    """Print the last record's number and hash: keep it elsewhere to detect a cut-off tail."""
    from parcours.core import audit
    from parcours.core.db import new_session

    session = new_session(write=False)
    try:
        seq, digest = audit.head(session)
    finally:
        session.close()
    typer.echo(f"{seq} {digest}")


@bench_app.command(
    "crm",
    add_help_option=False,  # --help goes to the script, which knows its options
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def bench_crm(ctx: typer.Context) -> None:
    """Run benchmarks/crm.py with the given options."""
    script = ROOT / "benchmarks" / "crm.py"
    raise typer.Exit(subprocess.call([sys.executable, str(script), *ctx.args], env=os.environ))


eval_app = typer.Typer(help="Quality measurements on public data sets.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")
eval_app.command("helpdesk")(insight_commands.eval_helpdesk)


@eval_app.command("retrieval")
def eval_retrieval(
    corpus: Annotated[Path, typer.Option(help="BEIR corpus.jsonl (_id, title, text).")],
    queries: Annotated[Path, typer.Option(help="BEIR queries.jsonl (_id, text).")],
    qrels: Annotated[Path, typer.Option(help="BEIR qrels TSV: query-id, corpus-id, score.")],
    modes: Annotated[str, typer.Option(help="Comma-separated.")] = "bm25,dense,hybrid",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures here.")
    ] = None,
    index_dir: Annotated[
        Path | None, typer.Option(help="Build the index here (an empty folder) and keep it.")
    ] = None,
) -> None:
    """Index a BEIR-format set and print nDCG@10, Recall@100, MRR@10 and latency per mode."""
    from parcours.ai import evaluate

    last = [0.0]

    def progress(done: int, total: int, seconds: float) -> None:
        if seconds - last[0] >= 2 or done == total:
            last[0] = seconds
            rate = done / seconds if seconds else 0
            typer.echo(
                f"  embedding {done:>10,}/{total:,} ({100 * done / total:5.1f}%), "
                f"{rate:,.0f} passages/s",
                err=True,
            )

    try:
        chosen = evaluate.parse_modes(modes)
        evaluate.check_index_dir(index_dir)
        data = evaluate.load(corpus, queries, qrels)
        typer.echo(
            f"  indexing {len(data.documents):,} documents, {len(data.queries):,} queries",
            err=True,
        )
        report = evaluate.evaluate(data, chosen, index_dir=index_dir, progress=progress)
    except evaluate.InvalidInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(evaluate.table(report))
    if json_out is not None:
        try:
            json_out.write_text(json.dumps(report.as_dict(), indent=2) + "\n")
        except OSError as exc:
            typer.echo(f"error: --json {json_out}: {exc.strerror}", err=True)
            raise typer.Exit(2) from exc


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    Path.cwd()
    app()
