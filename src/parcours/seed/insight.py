"""Demo documents for the assistants: market research PDFs (French and English, some kept to
marketing), and the help desk's HR and IT knowledge base. Invented figures, for the demo only."""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF

# (file name, title, language, category, product, roles allowed (empty: everyone), pages)
STUDIES = [
    (
        "etude-marche-anticoagulants-2026.pdf",
        "Étude de marché : anticoagulants oraux en France, 2026",
        "fr",
        "market_research",
        "Cardiora",
        ["marketing"],
        [
            "Synthèse. Cette étude porte sur 412 médecins interrogés entre janvier et mars 2026 : "
            "180 cardiologues, 160 médecins généralistes et 72 gériatres. Elle décrit le marché "
            "des anticoagulants oraux directs, les prescripteurs, les freins à la prescription et "
            "les canaux d'information préférés des médecins.",
            "Taille du marché. Le marché français des anticoagulants oraux directs atteint "
            "1,2 milliard d'euros en 2025, en hausse de 6 % sur un an. Les anticoagulants oraux "
            "directs représentent désormais 78 % des nouvelles mises sous traitement, contre "
            "22 % pour les antivitamines K. La croissance ralentit dans les grandes villes et "
            "reste forte dans les zones rurales.",
            "Prescripteurs. Les cardiologues hospitaliers représentent 38 % des primo-"
            "prescriptions, les cardiologues libéraux 27 % et les médecins généralistes 35 %. "
            "Les médecins généralistes renouvellent 81 % des traitements. Les gériatres "
            "prescrivent surtout chez les patients de plus de 80 ans.",
            "Freins à la prescription. Le risque hémorragique est le premier frein, cité par "
            "61 % des médecins généralistes interrogés. Viennent ensuite l'insuffisance rénale "
            "(44 %) et l'observance des patients âgés (37 %). Les cardiologues citent moins "
            "souvent ces freins que les généralistes.",
            "Canaux d'information. 72 % des cardiologues préfèrent recevoir l'information "
            "scientifique par webinaire ou par e-mail plutôt qu'en visite. Les médecins "
            "généralistes restent attachés à la visite médicale (58 %), mais acceptent une "
            "visite à distance de 15 minutes dans 46 % des cas. Recommandation : combiner "
            "visite, e-mail approuvé et webinaire dans un même parcours.",
        ],
    ),
    (
        "diabetes-market-research-2026.pdf",
        "Diabetes market research: France and Germany, 2026",
        "en",
        "market_research",
        "Glucara",
        ["marketing"],
        [
            "Summary. This study surveyed 350 physicians in France and Germany in February "
            "2026: 120 endocrinologists and 230 general practitioners treating type 2 diabetes. "
            "It covers market growth, prescribing habits and how physicians want to hear from "
            "laboratories.",
            "Market growth. GLP-1 receptor agonists grew 24% in volume in 2025 across both "
            "countries, while DPP-4 inhibitors declined by 7%. In Germany, SGLT2 inhibitors are "
            "now prescribed to 41% of newly treated patients. Price pressure from tenders is "
            "strongest in Germany.",
            "Prescribing habits. Endocrinologists in Germany see on average 42 patients with "
            "type 2 diabetes per week, against 31 in France. General practitioners start "
            "treatment in 64% of cases and refer complex patients to endocrinologists after a "
            "median of 9 months.",
            "Engagement. 55% of endocrinologists accepted a 15-minute remote detailing call "
            "during the study period, and 68% of them rated it as useful as a field visit. "
            "Webinars on cardiovascular outcomes drew the highest attendance. Physicians ask "
            "for fewer, shorter emails with one clear message.",
        ],
    ),
    (
        "oncology-hcp-engagement-survey-2026.pdf",
        "Oncology HCP engagement survey 2026",
        "en",
        "study",
        "Oncolia",
        [],
        [
            "About this survey. 210 oncologists in France, Spain and Italy answered an online "
            "questionnaire in April 2026 about how they learn about new therapies.",
            "Channels. Congresses remain the first source of information for 74% of "
            "oncologists. Medical science liaison visits rank second. Only 18% read "
            "promotional emails regularly, but 49% open emails that contain new clinical data.",
            "Expectations. Oncologists expect answers to medical information requests within "
            "48 hours. 63% would use a secure portal to ask questions about dosing and "
            "interactions.",
        ],
    ),
]

HELPDESK = [
    (
        "conges-et-teletravail.md",
        "fr",
        "hr",
        """# Congés et télétravail

## Congés payés
Chaque salarié dispose de 25 jours ouvrés de congés payés par an, plus 10 jours de RTT.
Les congés se posent dans l'outil RH au moins deux semaines à l'avance.
Les congés non pris au 31 mai sont perdus, sauf accord écrit du manager.

## Télétravail
Le télétravail est autorisé deux jours par semaine pour les salariés du siège.
Les délégués médicaux peuvent télétravailler le vendredi pour préparer leurs visites.

## Notes de frais
Les notes de frais sont remboursées sous 15 jours après validation par le manager.
Les repas avec des professionnels de santé doivent respecter la loi Bertrand (transparence).
""",
    ),
    (
        "it-help.html",
        "en",
        "it",
        """<html><head><title>IT help: passwords, VPN and tablets</title></head><body>
<h1>Passwords</h1>
<p>To reset your password, open the self-service portal and answer your two security
questions. A new password must have at least 12 characters. Passwords expire every 180 days.</p>
<h1>VPN</h1>
<p>The VPN client starts automatically on company laptops. If the VPN does not connect from a
hotel, switch to the 443 profile in the client settings.</p>
<h1>Lost or stolen tablet</h1>
<p>Report a lost or stolen tablet within 24 hours by calling the IT hotline at extension 4242.
IT wipes the tablet remotely and ships a replacement within two working days.</p>
</body></html>
""",
    ),
]


def pdf(path: Path, title: str, pages: list[str]) -> Path:
    """A plain report: the title on every page, one section per page, a page number."""
    doc = FPDF(format="A4")
    doc.set_auto_page_break(True, margin=20)
    doc.set_title(title)
    doc.set_author("parcours demo")
    for i, body in enumerate(pages, start=1):
        doc.add_page()
        doc.set_font("Helvetica", "B", 16)
        doc.multi_cell(0, 9, text=title)
        doc.ln(4)
        doc.set_font("Helvetica", size=12)
        doc.multi_cell(0, 7, text=body)
        doc.set_auto_page_break(False)
        doc.set_y(-15)
        doc.set_font("Helvetica", size=9)
        doc.cell(0, 10, text=f"{i} / {len(pages)}", align="C")
        doc.set_auto_page_break(True, margin=20)
    doc.output(str(path))
    return path


def write(folder: Path) -> list[dict]:
    """The demo documents in folder; one dict each, for the service."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for filename, title, lang, category, product, roles, pages in STUDIES:
        pdf(folder / filename, title, pages)
        out.append(
            {
                "path": folder / filename,
                "title": title,
                "language": lang,
                "category": category,
                "product": product,
                "roles": roles,
            }
        )
    for filename, lang, category, body in HELPDESK:
        (folder / filename).write_text(body, encoding="utf-8")
        out.append(
            {
                "path": folder / filename,
                "title": None,
                "language": lang,
                "category": category,
                "product": None,
                "roles": [],
            }
        )
    return out


def run(engine, folder: Path | None = None) -> dict:
    """Add and index the demo documents as the demo marketing user (help desk as admin)."""
    import tempfile

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from parcours.ai import service
    from parcours.core import audit
    from parcours.core.models import User

    out = {"documents": 0, "passages": 0}
    with tempfile.TemporaryDirectory() as tmp, Session(engine) as session, session.begin():
        users = {u.email: u for u in session.scalars(select(User))}
        marketing = users.get("marketing@parcours.demo")
        admin = users.get("admin@parcours.demo")
        if marketing is None or admin is None:
            return out
        for item in write(folder or Path(tmp)):
            owner = admin if item["category"] in ("hr", "it") else marketing
            audit.bind_actor(session, owner.id, f"seed:{owner.email}")
            doc, _ = service.add_file(
                session,
                owner,
                item["path"].name,
                item["path"].read_bytes(),
                acl=service.Acl.of(item["roles"]),
                meta=service.Meta(
                    title=item["title"],
                    category=item["category"],
                    product=item["product"],
                    language=item["language"],
                ),
            )
            doc = service.index_now(session, doc.id)
            out["documents"] += 1
            out["passages"] += doc.chunks
    return out
