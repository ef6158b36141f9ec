"""Generator stage for accounts: HCOs, HCPs, addresses, identifiers, affiliations, targets."""

from __future__ import annotations

import json
from array import array
from bisect import bisect_right
from itertools import accumulate

from parcours.accounts.text import search_key
from parcours.seed.helpers import _allocate, _ascii, _Leaf, _People, _weighted_pool
from parcours.seed.reference import (
    AFFILIATION_ROLES,
    COUNTRIES,
    EMAIL_DOMAINS,
    HCO_TEMPLATES,
    HCO_TYPE_WEIGHTS,
    PREFERRED_CHANNELS,
    SEGMENTS,
    SPECIALTIES,
    TARGET_SHARE,
    TITLES,
)


class _AccountsStage:
    """Accounts stage of `_Generator` (mixed in; uses its attributes)."""

    # ---- HCOs and HCPs with addresses, identifiers, affiliations, alignments, targets
    def accounts(self) -> None:
        w, rnd = self.w, self.rnd
        r = rnd.random
        created = self.ts(self.epoch)
        seg_pool = _weighted_pool([(i, s[3]) for i, s in enumerate(SEGMENTS)], 1000)
        spec_pool = _weighted_pool([(s, s[2]) for s in SPECIALTIES], 1000)
        pref_pool = _weighted_pool(PREFERRED_CHANNELS, 100)
        hco_type_pool = _weighted_pool(list(HCO_TYPE_WEIGHTS.items()), 100)
        # product sets, interned: index -> tuple of product indexes
        self.product_sets: list[tuple[int, ...]] = []
        set_index: dict[tuple[int, ...], int] = {}
        total = self.hcps
        # per-HCP data the activity stage needs, indexed by id - first hcp id
        self.hcp_seg = array("b")
        self.hcp_ps = array("h")
        per_leaf = _allocate(self.hcps, [0.8 + 0.4 * r() for _ in self.leaves])
        leaves_by_country: dict[str, list[_Leaf]] = {}
        for leaf in self.leaves:
            leaves_by_country.setdefault(leaf.country, []).append(leaf)
        planned = [s[5] for s in SEGMENTS]
        done = 0
        if self.progress:
            self.progress("accounts", 0, total)
        # HCO ids first for every leaf, then HCPs, so a leaf's HCPs have consecutive ids
        for leaf, n in zip(self.leaves, per_leaf, strict=True):
            leaf.hcp_count = n
            leaf.hco_count = max(1, round(n / 10)) if n else 0
        hco_first = self.ids["accounts"]
        for leaf in self.leaves:
            leaf.hco_first = hco_first
            hco_first += leaf.hco_count
        self.ids["accounts"] = hco_first
        self.hcp_first_id = hco_first
        for leaf in self.leaves:
            leaf.hcp_first = hco_first
            hco_first += leaf.hcp_count
        self.ids["accounts"] = hco_first

        for leaf in self.leaves:
            cc = leaf.country
            p = self.people_for(cc)
            lang = COUNTRIES[cc][1]
            cum = list(accumulate(leaf.city_weights))
            doms = EMAIL_DOMAINS[cc]
            titles = TITLES[cc]
            siblings = [x for x in leaves_by_country[cc] if x is not leaf]

            # HCOs
            for k in range(leaf.hco_count):
                aid = leaf.hco_first + k
                city, codes = leaf.cities[bisect_right(cum, r() * cum[-1])]
                htype = hco_type_pool[int(r() * 100)]
                tmpl = HCO_TEMPLATES[cc][htype]
                name = tmpl[int(r() * len(tmpl))].format(city=city, name=rnd.choice(p.last))
                phones = json.dumps([self.phone(cc)])
                emails = json.dumps([f"contact@{_ascii(name)[:40]}.example"] if r() < 0.6 else [])
                w.add(
                    "accounts",
                    (
                        aid,
                        "hco",
                        None,
                        None,
                        None,
                        None,
                        None,
                        name,
                        htype,
                        emails,
                        phones,
                        lang,
                        None,
                        None,
                        cc,
                        search_key(name),
                        city,
                        search_key(city),
                        "active",
                        created,
                        created,
                    ),
                )
                self.place(aid, "hco", city, codes, cc, p, leaf)
                self.n_hcos += 1

            # HCPs
            for k in range(leaf.hcp_count):
                aid = leaf.hcp_first + k
                city, codes = leaf.cities[bisect_right(cum, r() * cum[-1])]
                spec, prof, _w, prods, hospital = spec_pool[int(r() * 1000)]
                female = r() < 0.5
                first = (p.female if female else p.male)[
                    int(r() * len(p.female if female else p.male))
                ]
                last = p.last[int(r() * len(p.last))]
                if prof == "physician":
                    t = titles[1] if hospital and r() < 0.06 else titles[0]
                elif prof == "pharmacist" and cc in ("FR", "IT", "ES"):
                    t = titles[0]
                else:
                    t = titles[2]
                title = t[1] if female else t[0]
                seg = seg_pool[int(r() * 1000)]
                # detailed products: up to two of the specialty's
                if len(prods) > 2:
                    i = int(r() * len(prods))
                    j = (i + 1 + int(r() * (len(prods) - 1))) % len(prods)
                    prods = (prods[i], prods[j])
                pset = tuple(sorted(self.product_index[c] for c in prods))
                ps = set_index.get(pset)
                if ps is None:
                    ps = set_index[pset] = len(self.product_sets)
                    self.product_sets.append(pset)
                self.hcp_seg.append(seg)
                self.hcp_ps.append(ps)
                fa, la = _ascii(first), _ascii(last)
                x = r()
                emails = (
                    []
                    if x < 0.08
                    else [f"{fa}.{la}@{doms[int(r() * 3)]}"]
                    if x < 0.85
                    else [f"{fa}.{la}@{doms[0]}", f"{fa[0]}{la}{aid % 97}@{doms[1]}"]
                )
                phones = [self.phone(cc)] if r() < 0.9 else []
                if r() < 0.3:
                    phones.append(self.phone(cc, mobile=True))
                w.add(
                    "accounts",
                    (
                        aid,
                        "hcp",
                        title,
                        first,
                        last,
                        spec,
                        prof,
                        None,
                        None,
                        json.dumps(emails, ensure_ascii=False),
                        json.dumps(phones),
                        lang,
                        pref_pool[int(r() * 100)],
                        self.segment_ids[seg],
                        cc,
                        search_key(last, first),
                        city,
                        search_key(city),
                        "active",
                        created,
                        created,
                    ),
                )
                self.place(aid, "hcp", city, codes, cc, p, leaf)
                if siblings and r() < 0.03:
                    other = siblings[int(r() * len(siblings))]
                    w.add(
                        "account_territories", (self.next_id("account_territories"), aid, other.id)
                    )
                if leaf.hco_count:
                    roles = AFFILIATION_ROLES[prof]
                    h1 = leaf.hco_first + int(r() * leaf.hco_count)
                    w.add(
                        "affiliations",
                        (self.next_id("affiliations"), aid, h1, roles[int(r() * len(roles))], True),
                    )
                    if leaf.hco_count > 1 and r() < 0.25:
                        h2 = (
                            leaf.hco_first
                            + (h1 - leaf.hco_first + 1 + int(r() * (leaf.hco_count - 1)))
                            % leaf.hco_count
                        )
                        w.add(
                            "affiliations",
                            (
                                self.next_id("affiliations"),
                                aid,
                                h2,
                                roles[int(r() * len(roles))],
                                False,
                            ),
                        )
                if pset and r() < TARGET_SHARE[seg]:
                    for cycle in self.cycles:
                        for pi in pset:
                            w.add(
                                "target_list_entries",
                                (self.next_id("target_list_entries"), cycle[pi], aid, planned[seg]),
                            )
                self.n_hcps += 1
                done += 1
                if self.progress and done % 5000 == 0:
                    self.progress("accounts", done, total)
        w.flush("target_list_entries")
        if self.progress:
            self.progress("accounts", done, total)

    def place(self, aid: int, kind: str, city, codes, cc: str, p, leaf) -> None:
        """An account's primary address, identifier and territory alignment."""
        w = self.w
        self.address(aid, city, codes, cc, p)
        system, value = self.identifier(cc, kind, aid)
        w.add("account_identifiers", (self.next_id("account_identifiers"), aid, system, value))
        w.add("account_territories", (self.next_id("account_territories"), aid, leaf.id))

    def address(self, aid: int, city: str, codes: list[str], cc: str, p: _People) -> None:
        r = self.rnd.random
        n = 1 + int(r() * 120)
        street = p.streets[int(r() * len(p.streets))]
        line1 = (
            f"{street} {n}"
            if cc == "DE"
            else f"{street}, {n}"
            if cc in ("IT", "ES")
            else f"{n} {street}"
        )
        self.w.add(
            "addresses",
            (
                self.next_id("addresses"),
                aid,
                line1,
                None,
                codes[int(r() * len(codes))],
                city,
                cc,
                True,
            ),
        )

    def phone(self, cc: str, mobile: bool = False) -> str:
        """Numbers in the ranges reserved for fiction where the country has them."""
        n = int(self.rnd.random() * 1000)
        if cc == "FR":
            return (
                f"+33 6 39 98 {n // 100:02d} {n % 100:02d}"
                if mobile
                else f"+33 1 99 00 {n // 100:02d} {n % 100:02d}"
            )
        if cc == "GB":
            return f"+44 7700 900{n:03d}" if mobile else f"+44 20 7946 0{n:03d}"
        if cc == "DE":
            return f"+49 30 23125{n:03d}"
        if cc == "IT":
            return f"+39 3{n % 10}0 555 {n:04d}" if mobile else f"+39 02 555 {n:04d}"
        return f"+34 6{n % 10}0 555 {n:03d}" if mobile else f"+34 91 555 {n:04d}"

    @staticmethod
    def identifier(cc: str, kind: str, aid: int) -> tuple[str, str]:
        """Unique, random-looking numbers: an affine bijection of the account id."""
        v = (aid * 7_654_321 + 1_234_567) % 1_000_000_000
        if kind == "hcp":
            return ("rpps", f"10{v:09d}") if cc == "FR" else ("npi", f"1{v:09d}")
        return ("finess", f"{v:09d}") if cc == "FR" else ("gln", f"4000{v:09d}")
