"""Generator helpers: weighted pools, allocation, dates, territory leaves, Faker name pools."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from faker import Faker

from parcours.accounts.text import search_key


def _weighted_pool(items: Sequence[tuple[object, float]], size: int) -> list:
    """A list of `size` items in proportion to their weights, for pool[int(random() * size)]."""
    total = sum(w for _, w in items)
    pool: list = []
    acc = 0.0
    for item, w in items:
        acc += w
        pool.extend([item] * (round(acc / total * size) - len(pool)))
    return pool


def _allocate(n: int, weights: Sequence[float], minimum: int = 0) -> list[int]:
    """Split n into integer parts proportional to weights (largest remainder)."""
    k = len(weights)
    if k == 0:
        return []
    base = [minimum] * k if n >= minimum * k else [0] * k
    rest = n - sum(base)
    total = sum(weights) or 1.0
    shares = [rest * w / total for w in weights]
    parts = [int(s) for s in shares]
    left = rest - sum(parts)
    order = sorted(range(k), key=lambda i: (parts[i] - shares[i], i))
    for i in order[:left]:
        parts[i] += 1
    return [b + p for b, p in zip(base, parts, strict=True)]


def _sub_months(d: date, months: int) -> date:
    y, m = divmod(d.year * 12 + d.month - 1 - months, 12)
    m += 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(y, m, day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _ascii(s: str) -> str:
    return "".join(c for c in search_key(s) if c.isalnum() or c == "-").strip("-")


def _quarter_start(d: date) -> date:
    return date(d.year, 3 * ((d.month - 1) // 3) + 1, 1)


@dataclass
class _Leaf:
    id: int
    code: str
    name: str
    country: str
    region_id: int
    cities: list[tuple[str, list[str]]]
    city_weights: list[float]
    rep_id: int = 0
    lang: str = "en"
    hcp_first: int = 0
    hcp_count: int = 0
    hco_first: int = 0
    hco_count: int = 0


class _People:
    """Pools of names and streets drawn once from Faker for one country."""

    def __init__(self, locale: str, seed: int) -> None:
        fake = Faker(locale)
        fake.seed_instance(seed)
        self.male = sorted({fake.first_name_male() for _ in range(400)})
        self.female = sorted({fake.first_name_female() for _ in range(400)})
        self.last = sorted({fake.last_name() for _ in range(1500)})
        self.streets = sorted({fake.street_name() for _ in range(400)})
