"""Generator stage for activities: submitted touchpoints, planned calls, tasks."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from parcours.seed.helpers import _Leaf, _weighted_pool
from parcours.seed.reference import (
    CALL_OUTCOMES,
    CHANNEL_MIX,
    COUNTRIES,
    GENERIC_SUBJECTS,
    GROUP_SHARE,
    NOTES,
    PRODUCTS,
    SEGMENTS,
    SUBJECTS,
    TASKS,
)


class _ActivitiesStage:
    """Activities and tasks stage of `_Generator` (mixed in; uses its attributes)."""

    # ---- activities
    def _time_tables(self) -> tuple[list[str], dict[str, list[int]], list[str]]:
        """Weekday prefixes 'YYYY-MM-DD ' of the period, UTC offsets per country, HH:MM texts."""
        days: list[date] = []
        d = self.start
        while d < self.today:
            if d.weekday() < 5:
                days.append(d)
            d += timedelta(days=1)
        prefixes = [d.isoformat() + " " for d in days]
        offsets = {cc: [self.utc_offset(cc, d) for d in days] for cc in COUNTRIES}
        suffix = ":00" + self.w.ts_suffix
        times = [f"{m // 60:02d}:{m % 60:02d}{suffix}" for m in range(24 * 60)]
        return prefixes, offsets, times

    @staticmethod
    def utc_offset(cc: str, d: date) -> int:
        tz = ZoneInfo(COUNTRIES[cc][3])
        off = datetime(d.year, d.month, d.day, 12, tzinfo=tz).utcoffset()
        return int(off.total_seconds() // 60) if off else 0

    def _content(self) -> dict[str, list[list[tuple[str, str, list[str | None]]]]]:
        """Per language, per product set: variants of (product_ids, key_messages, subjects)."""
        rnd = self.rnd
        out: dict[str, list] = {}
        channels = [c[0] for c in CHANNEL_MIX]
        for lang in ("fr", "en"):
            per_set = []
            for pset in self.product_sets:
                variants = []
                choices = list(pset) or [None]
                for _ in range(12):
                    pi = choices[int(rnd.random() * len(choices))]
                    if pi is None:  # no product detailed: institutional contact
                        variants.append(("[]", "[]", list(GENERIC_SUBJECTS[lang])))
                        continue
                    pids = [self.product_ids[pi]]
                    if len(pset) > 1 and rnd.random() < 0.25:
                        pids.append(self.product_ids[[x for x in pset if x != pi][0]])
                    msgs = list(PRODUCTS[pi][3])
                    rnd.shuffle(msgs)
                    msgs = msgs[: 1 + int(rnd.random() * 3)]
                    brand = PRODUCTS[pi][1]
                    subj = []
                    for ch in channels:
                        tmpl = SUBJECTS[lang][ch]
                        subj.append(tmpl[int(rnd.random() * len(tmpl))].format(p=brand))
                    variants.append((json.dumps(pids), json.dumps(msgs, ensure_ascii=False), subj))
                per_set.append(variants)
            out[lang] = per_set
        return out

    def _combos(self, lang: str, size: int = 4096) -> list[tuple]:
        """Pre-drawn (channel index, channel, kind, duration, outcome, notes, local minute,
        minutes from start to submission, group) tuples in the channel mix proportions."""
        rnd = self.rnd
        r = rnd.random
        ch_pool = _weighted_pool([(i, c[1]) for i, c in enumerate(CHANNEL_MIX)], size)
        outcome_pool = _weighted_pool(CALL_OUTCOMES, 100)
        notes = NOTES[lang]
        combos = []
        for ci in ch_pool:
            ch, _share, kinds, durs, (lo, hi), is_call = CHANNEL_MIX[ci]
            kind_pool = _weighted_pool(kinds, 100)
            kind = kind_pool[int(r() * 100)]
            dur = durs[int(r() * len(durs))]
            local = lo + 5 * int(r() * ((hi - lo) // 5))
            outcome = outcome_pool[int(r() * 100)] if is_call else None
            note = notes[int(r() * len(notes))] if is_call and r() < 0.3 else None
            delay = (dur or 0) + (5 + int(r() * 180) if is_call else 0)
            group = ch in ("field_visit", "event", "webinar") and r() < GROUP_SHARE * 100 / 51
            if group and ch == "field_visit":
                kind = "group_meeting"
            combos.append((ci, ch, kind, dur, outcome, note, local, delay, group))
        return combos

    def activities(self) -> None:
        w, rnd = self.w, self.rnd
        r = rnd.random
        prefixes, offsets, times = self._time_tables()
        nd = len(prefixes)
        content = self.content = self._content()
        combos = {lang: self._combos(lang) for lang in ("fr", "en")}
        nc = len(combos["fr"])
        seg_weight = [s[4] for s in SEGMENTS]
        mean_w = sum(s[3] * s[4] for s in SEGMENTS)
        mu = [self.per_month * self.months * sw / mean_w for sw in seg_weight]
        total = int(self.hcps * self.per_month * self.months)
        if self.progress:
            self.progress("activities", 0, total)
        acts = w.buffers["activities"]
        atts = w.buffers["activity_attendees"]
        batch = w.batch
        aid = self.ids["activities"]
        tid = self.ids["activity_attendees"]
        done = 0
        first_hcp = self.hcp_first_id
        seg_arr, ps_arr = self.hcp_seg, self.hcp_ps
        for leaf in self.leaves:
            owner = leaf.rep_id
            offs = offsets[leaf.country]
            cmb = combos[leaf.lang]
            cont = content[leaf.lang]
            lo, n_leaf = leaf.hcp_first, leaf.hcp_count
            for hid in range(lo, lo + n_leaf) if nd else ():
                k = hid - first_hcp
                variants = cont[ps_arr[k]]
                nv = len(variants)
                n = int(mu[seg_arr[k]] * (0.4 + 1.2 * r()) + r())
                for _ in range(n):
                    ci, ch, kind, dur, outcome, note, local, delay, group = cmb[int(r() * nc)]
                    di = int(r() * nd)
                    v = variants[int(r() * nv)]
                    m = local - offs[di]
                    day = prefixes[di]
                    start = day + times[m]
                    ms = m + delay
                    sub = day + times[ms if ms < 1440 else 1439]
                    acts.append(
                        (
                            aid,
                            ch,
                            kind,
                            "submitted",
                            owner,
                            hid,
                            start,
                            dur,
                            v[2][ci],
                            outcome,
                            note,
                            v[0],
                            v[1],
                            sub,
                            start,
                            sub,
                        )
                    )
                    atts.append((tid, aid, hid, start, ch))
                    tid += 1
                    if group and n_leaf > 2:
                        extra = min(1 + int(r() * 4), n_leaf - 1)
                        base = int(r() * n_leaf)
                        for e in range(extra):
                            other = lo + (base + e) % n_leaf
                            if other != hid:
                                atts.append((tid, aid, other, start, ch))
                                tid += 1
                    aid += 1
                if len(acts) >= batch:
                    done += len(acts)
                    w.flush("activity_attendees")
                    acts = w.buffers["activities"]
                    atts = w.buffers["activity_attendees"]
                    if self.progress:
                        self.progress("activities", done, max(total, done))
        self.ids["activities"] = aid
        self.ids["activity_attendees"] = tid
        self.planned()
        w.flush("activity_attendees")
        if self.progress:
            self.progress("activities", w.written["activities"], w.written["activities"])

    def _pick_hcp(self, leaf: _Leaf, best: bool) -> int | None:
        if not leaf.hcp_count:
            return None
        r = self.rnd.random
        for _ in range(20):
            hid = leaf.hcp_first + int(r() * leaf.hcp_count)
            if not best or self.hcp_seg[hid - self.hcp_first_id] <= 1:
                return hid
        return hid

    def planned(self) -> None:
        """Each rep: planned calls today and over the next working days."""
        w, rnd = self.w, self.rnd
        r = rnd.random
        suffix = self.w.ts_suffix
        today_slots = (9 * 60, 10 * 60 + 30, 11 * 60 + 45, 14 * 60, 15 * 60 + 30, 17 * 60)
        later_slots = (9 * 60 + 30, 11 * 60, 14 * 60 + 30, 16 * 60)
        self.todays: dict[int, list[tuple[int, int]]] = {}  # rep -> [(activity id, account)]
        created = self.ts(
            datetime.combine(self.today - timedelta(days=3), datetime.min.time()).replace(hour=17)
        )
        for leaf in self.leaves:
            if not leaf.hcp_count:
                continue
            days = [(self.today, today_slots[: 4 + int(r() * 3)])]
            d = self.today
            while len(days) < 8:
                d += timedelta(days=1)
                if d.weekday() < 5:
                    days.append((d, later_slots[: 2 + int(r() * 3)]))
            self.todays[leaf.rep_id] = []
            for day, slots in days:
                off = self.utc_offset(leaf.country, day)
                for i, local in enumerate(slots):
                    hid = self._pick_hcp(leaf, best=True)
                    ch = "remote_detailing" if i == 1 else "field_visit"
                    dur = 15 if ch == "remote_detailing" else 30
                    m = local - off
                    start = f"{day.isoformat()} {m // 60:02d}:{m % 60:02d}:00{suffix}"
                    variants = self.content[leaf.lang][self.hcp_ps[hid - self.hcp_first_id]]
                    pids, msgs, subjects = variants[int(r() * len(variants))]
                    ci = 0 if ch == "field_visit" else 2
                    aid = self.next_id("activities")
                    w.add(
                        "activities",
                        (
                            aid,
                            ch,
                            "detail",
                            "planned",
                            leaf.rep_id,
                            hid,
                            start,
                            dur,
                            subjects[ci],
                            None,
                            None,
                            pids,
                            msgs,
                            None,
                            created,
                            created,
                        ),
                    )
                    w.add(
                        "activity_attendees",
                        (self.next_id("activity_attendees"), aid, hid, start, ch),
                    )
                    if day == self.today:
                        self.todays[leaf.rep_id].append((aid, hid))

    # ---- tasks
    def tasks(self) -> None:
        w, rnd = self.w, self.rnd
        r = rnd.random
        for leaf in self.leaves:
            if not leaf.hcp_count:
                continue
            titles = TASKS[leaf.lang]
            todays = self.todays.get(leaf.rep_id, [])
            for i in range(10):
                hid = self._pick_hcp(leaf, best=False)
                pset = self.product_sets[self.hcp_ps[hid - self.hcp_first_id]]
                brand = PRODUCTS[pset[int(r() * len(pset))]][1] if pset else "—"
                title = titles[int(r() * len(titles))].format(p=brand).replace(" —", "")
                activity_id = None
                if i < 2 and todays:
                    activity_id, hid = todays[i % len(todays)]
                if i < 7:  # open, due around today
                    due = self.today + timedelta(days=int(r() * 15) - 4)
                    created = self.today - timedelta(days=5 + int(r() * 10))
                    row = (
                        self.next_id("tasks"),
                        leaf.rep_id,
                        hid,
                        activity_id,
                        title,
                        due.isoformat(),
                        "open",
                        self.ts(datetime.combine(created, datetime.min.time()).replace(hour=16)),
                        None,
                    )
                else:  # done last weeks
                    due = self.today - timedelta(days=3 + int(r() * 25))
                    created = due - timedelta(days=7)
                    done_at = datetime.combine(due, datetime.min.time()).replace(hour=15)
                    row = (
                        self.next_id("tasks"),
                        leaf.rep_id,
                        hid,
                        None,
                        title,
                        due.isoformat(),
                        "done",
                        self.ts(datetime.combine(created, datetime.min.time()).replace(hour=16)),
                        self.ts(done_at),
                    )
                w.add("tasks", row)
        w.flush()
