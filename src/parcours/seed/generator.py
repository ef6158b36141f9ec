"""`run` and the generator: reference rows (users, territories, products, target lists), stages."""

from __future__ import annotations

import math
import os
import random
import secrets
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from parcours.core import audit
from parcours.core.security import hash_password
from parcours.seed.accounts import _AccountsStage
from parcours.seed.activities import _ActivitiesStage
from parcours.seed.helpers import _allocate, _Leaf, _People, _quarter_start, _sub_months
from parcours.seed.reference import (
    COUNTRIES,
    DEMO_DOMAIN,
    PRODUCTS,
    REGIONS,
    SEGMENTS,
)
from parcours.seed.writer import BATCH, ORDER, Progress, _Writer


@dataclass
class SeedResult:
    users: int
    hcps: int
    hcos: int
    activities: int
    tasks: int
    seconds: float
    password: str


def run(
    engine: Engine,
    *,
    hcps: int = 2000,
    reps: int = 20,
    months: int = 6,
    seed: int = 42,
    password: str | None = None,
    today: date | None = None,
    progress: Progress | None = None,
    activities_per_hcp_month: float = 4.0,
    batch_size: int = BATCH,
    rebuild_indexes: bool | None = None,
) -> SeedResult:
    """Load the demo data set into an empty, migrated database and return what was made.

    password: for every demo user; else $PARCOURS_DEMO_PASSWORD; else a random one.
    today: the day the data is built around (past calls before it, planned calls from it).
    progress: called as progress(stage, done, total) after every batch.
    activities_per_hcp_month: average touchpoints per HCP and month, all channels.
    rebuild_indexes: drop the secondary indexes (and, on PostgreSQL, the foreign keys) of the
    big tables during the load and create them again at the end, much faster for big loads;
    by default when more than 200,000 activities are expected.

    Raises ValueError when the database already has users. Batches are committed as they
    go: a load that fails half-way leaves partial data behind (start again on a new database).
    """
    if hcps < 1 or reps < 1 or months < 0:
        raise ValueError("hcps and reps must be at least 1, months at least 0")
    started = time.perf_counter()
    today = today or date.today()
    password = password or os.environ.get("PARCOURS_DEMO_PASSWORD") or secrets.token_urlsafe(12)

    with engine.connect() as conn:
        existing = conn.execute(text("SELECT COUNT(*) FROM users")).scalar_one()
        if existing:
            raise ValueError(
                f"the database already holds {existing} users; seed only an empty database"
            )
        next_ids = {
            t: (conn.execute(text(f"SELECT MAX(id) FROM {t}")).scalar() or 0) + 1 for t in ORDER
        }

    expected = hcps * activities_per_hcp_month * months
    if rebuild_indexes is None:
        rebuild_indexes = expected > 200_000
    w = _Writer(engine, batch_size, rebuild_indexes)
    try:
        w.begin()
        gen = _Generator(
            w,
            next_ids,
            seed=seed,
            today=today,
            hcps=hcps,
            reps=reps,
            months=months,
            per_month=activities_per_hcp_month,
            progress=progress,
        )
        gen.reference(hash_password(password))
        gen.accounts()
        gen.activities()
        gen.tasks()
        w.finish(progress)
    finally:
        w.close()

    counts = {
        "users": w.written["users"],
        "hcps": gen.n_hcps,
        "hcos": gen.n_hcos,
        "activities": w.written["activities"],
        "attendees": w.written["activity_attendees"],
        "tasks": w.written["tasks"],
        "territories": w.written["territories"],
        "target_list_entries": w.written["target_list_entries"],
    }
    with Session(engine) as session, audit.acting_as(None, "seed"):
        audit.note(
            session,
            "seed",
            "bulk",
            "create",
            "demo data loaded",
            after={**counts, "seed": seed, "months": months, "today": today},
        )
        session.commit()
    if progress:
        progress("done", 1, 1)
    return SeedResult(
        users=counts["users"],
        hcps=counts["hcps"],
        hcos=counts["hcos"],
        activities=counts["activities"],
        tasks=counts["tasks"],
        seconds=time.perf_counter() - started,
        password=password,
    )


class _Generator(_AccountsStage, _ActivitiesStage):
    def __init__(
        self,
        w: _Writer,
        next_ids: dict[str, int],
        *,
        seed: int,
        today: date,
        hcps: int,
        reps: int,
        months: int,
        per_month: float,
        progress: Progress | None,
    ) -> None:
        self.w = w
        self.ids = next_ids
        self.seed = seed
        self.rnd = random.Random(seed)
        self.today = today
        self.hcps = hcps
        self.reps = reps
        self.months = months
        self.per_month = per_month
        self.progress = progress
        self.start = _sub_months(today, months)
        # created_at of reference rows: a fixed moment before the period, so runs repeat
        self.epoch = datetime.combine(self.start - timedelta(days=30), datetime.min.time())
        self.epoch = self.epoch.replace(hour=7)
        self.n_hcps = 0
        self.n_hcos = 0
        self.people: dict[str, _People] = {}

    # ---- small helpers
    def next_id(self, table: str) -> int:
        i = self.ids[table]
        self.ids[table] = i + 1
        return i

    def ts(self, dt: datetime) -> str:
        return dt.strftime("%Y-%m-%d %H:%M:%S") + self.w.ts_suffix

    def people_for(self, country: str) -> _People:
        if country not in self.people:
            self.people[country] = _People(COUNTRIES[country][2], self.seed)
        return self.people[country]

    # ---- users, territories, products, segments, target lists
    def reference(self, password_hash: str) -> None:
        w, rnd = self.w, self.rnd
        self.segment_ids = []
        for code, name, tier, *_ in SEGMENTS:
            sid = self.next_id("segments")
            self.segment_ids.append(sid)
            w.add("segments", (sid, code, name, tier))
        self.product_ids = []
        for code, brand, area, _msgs in PRODUCTS:
            pid = self.next_id("products")
            self.product_ids.append(pid)
            w.add("products", (pid, code, brand, area, True))
        self.product_index = {p[0]: i for i, p in enumerate(PRODUCTS)}

        # territories: leaves spread over countries, then regions
        n_leaves = self.reps
        codes = list(COUNTRIES)
        if n_leaves < len(codes):
            codes = codes[:n_leaves]
            per_country = [1] * n_leaves
        else:
            per_country = _allocate(n_leaves, [COUNTRIES[c][4] for c in codes], minimum=1)
        self.leaves: list[_Leaf] = []
        self.regions: list[tuple[int, str, list[_Leaf]]] = []  # id, country, leaves
        for cc, n_c in zip(codes, per_country, strict=True):
            cname, lang, _loc, _tz, _w = COUNTRIES[cc]
            cid = self.next_id("territories")
            w.add("territories", (cid, cc, cname, "country", None, f"/{cid}/", cc))
            regions = REGIONS[cc]
            used = regions[: max(1, min(len(regions), math.ceil(n_c / 3)))]
            per_region = _allocate(n_c, [r[2] for r in used], minimum=1)
            for (rcode, rname, _rw, cities_spec), n_r in zip(used, per_region, strict=True):
                rid = self.next_id("territories")
                w.add(
                    "territories",
                    (rid, f"{cc}-{rcode}", rname, "region", cid, f"/{cid}/{rid}/", cc),
                )
                cities = [
                    (c.split("|")[0], c.split("|")[1].split()) for c in cities_spec.split(";")
                ]
                # the region's cities dealt out to its leaves, a leaf named after its first
                shares = [
                    cities[j::n_r] if n_r <= len(cities) else [cities[j % len(cities)]]
                    for j in range(n_r)
                ]
                firsts = [share[0][0] for share in shares]
                region_leaves = []
                for j, mine in enumerate(shares):
                    name = firsts[j]
                    if firsts.count(name) > 1:
                        name = f"{name} {firsts[: j + 1].count(name)}"
                    lid = self.next_id("territories")
                    code = f"{cc}-{rcode}-{j + 1:03d}"
                    w.add(
                        "territories",
                        (lid, code, name, "territory", rid, f"/{cid}/{rid}/{lid}/", cc),
                    )
                    leaf = _Leaf(
                        lid,
                        code,
                        name,
                        cc,
                        rid,
                        mine,
                        [3.0] + [1.0] * (len(mine) - 1),
                        lang="fr" if lang == "fr" else "en",
                    )
                    region_leaves.append(leaf)
                    self.leaves.append(leaf)
                self.regions.append((rid, cc, region_leaves))

        # users
        created = self.ts(self.epoch)

        def add_user(
            email: str,
            full_name: str,
            role: str,
            language: str,
            country: str | None,
            manager_id: int | None,
        ) -> int:
            uid = self.next_id("users")
            w.add(
                "users",
                (
                    uid,
                    email,
                    full_name,
                    role,
                    language,
                    country,
                    manager_id,
                    password_hash,
                    True,
                    0,
                    created,
                ),
            )
            return uid

        def person(country: str) -> str:
            p = self.people_for(country)
            first = rnd.choice(p.male if rnd.random() < 0.5 else p.female)
            return f"{first} {rnd.choice(p.last)}"

        self.admin_id = add_user(f"admin@{DEMO_DOMAIN}", person("FR"), "admin", "fr", "FR", None)
        managers = {}
        for i, (rid, cc, _leaves) in enumerate(self.regions):
            email = f"manager@{DEMO_DOMAIN}" if i == 0 else f"manager{i + 1}@{DEMO_DOMAIN}"
            lang = "en" if i == 0 or cc != "FR" else "fr"
            uid = add_user(email, person(cc), "manager", lang, cc, None)
            managers[rid] = uid
            w.add("user_territories", (self.next_id("user_territories"), uid, rid))
        self.rep_ids = []
        for i, leaf in enumerate(self.leaves):
            email = f"rep@{DEMO_DOMAIN}" if i == 0 else f"rep{i + 1}@{DEMO_DOMAIN}"
            uid = add_user(
                email,
                person(leaf.country),
                "rep",
                leaf.lang,
                leaf.country,
                managers[leaf.region_id],
            )
            leaf.rep_id = uid
            self.rep_ids.append(uid)
            w.add("user_territories", (self.next_id("user_territories"), uid, leaf.id))
        add_user(f"marketing@{DEMO_DOMAIN}", person("GB"), "marketing", "en", "FR", None)
        add_user(f"reviewer@{DEMO_DOMAIN}", person("FR"), "reviewer", "fr", "FR", None)

        # target lists: one per product per quarter overlapping the period
        self.cycles: list[list[int]] = []  # per cycle: target list id per product
        q = _quarter_start(self.start)
        while q <= self.today:
            nq = date(q.year + (q.month + 2) // 12, (q.month + 2) % 12 + 1, 1)
            ids = []
            for (_code, brand, *_), pid in zip(PRODUCTS, self.product_ids, strict=True):
                tid = self.next_id("target_lists")
                ids.append(tid)
                label = f"{brand} Q{(q.month - 1) // 3 + 1} {q.year}"
                w.add(
                    "target_lists",
                    (tid, label, pid, q.isoformat(), (nq - timedelta(days=1)).isoformat()),
                )
            self.cycles.append(ids)
            q = nq
        w.flush()
