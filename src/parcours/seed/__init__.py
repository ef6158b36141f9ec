"""Deterministic demo and scale data: users, territories, HCPs, HCOs, activities, tasks.

`run(engine, hcps=..., reps=..., months=..., seed=...)` fills an empty, migrated database.
The same arguments (including `today`) always give the same rows.

Everything is streamed in batches, with ids assigned here, straight through the DBAPI
(executemany on SQLite, COPY on PostgreSQL): 1,000,000 HCPs and 50,000,000 activities
load in bounded memory. Rows written this way bypass the ORM and therefore its per-row
audit records; one audit record for the whole load is written at the end.

Faker is used once, to draw pools of names and streets per country; every other field
comes from precomputed pools indexed by one `random.Random(seed)`.
"""

from __future__ import annotations

from parcours.seed.generator import SeedResult, run
from parcours.seed.writer import BATCH, Progress

__all__ = ["BATCH", "Progress", "SeedResult", "run"]
