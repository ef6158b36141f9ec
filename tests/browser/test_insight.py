"""The insight assistant in headless Chromium on a tablet: marketing adds two studies and waits
for them to be indexed, asks in French and in English, reads the cited sources and opens one at
its page; a rep asking the same never gets a marketing-only source. Pages pass axe, have no
sideways scroll, and are photographed at 1024 and 768 px in both languages (var/screenshots)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy.orm import Session
from test_clm import serious_axe_violations, signed_in

from parcours.core import audit
from parcours.core.db import make_engine
from parcours.seed import insight as demo

from factories import ROOT, create_user

pytestmark = pytest.mark.browser

SHOTS = ROOT / "var" / "screenshots"
WIDTHS = (1024, 768)
FR_QUESTION = "Quel est le premier frein à la prescription des anticoagulants ?"
EN_QUESTION = "How much did GLP-1 receptor agonists grow in 2025?"
STUDIES = {s[0]: s for s in demo.STUDIES}
ANTICOAGULANTS = STUDIES["etude-marche-anticoagulants-2026.pdf"]
DIABETES = STUDIES["diabetes-market-research-2026.pdf"]


@pytest.fixture(scope="module")
def people(live_server):
    engine = make_engine(live_server["url"])
    with Session(engine) as s:
        audit.bind_actor(s, None, "test")
        marketing = create_user(
            s, "marketing", full_name="Inès Marketing", language="fr", country="FR"
        )
        rep = create_user(s, "rep", full_name="Rémi Terrain", language="en", country="FR")
        admin = create_user(s, "admin", full_name="Aline Admin", language="fr")
        reviewer = create_user(
            s, "reviewer", full_name="Marc Médical", language="fr", review_role="medical"
        )
        s.commit()
        emails = {
            "marketing": marketing.email,
            "rep": rep.email,
            "admin": admin.email,
            "reviewer": reviewer.email,
        }
    engine.dispose()
    return emails


def no_sideways_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def shots(page, name: str, lang: str) -> None:
    """The page at each tablet width: no sideways scroll, and a full-page screenshot."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 768 if width == 1024 else 1024})
        page.evaluate("window.scrollTo(0, 0)")  # sticky bars would land mid-picture
        page.wait_for_timeout(150)
        assert no_sideways_scroll(page), f"{name} scrolls sideways at {width} px ({lang})"
        page.screenshot(path=str(SHOTS / f"insight-{name}-{lang}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1024, "height": 768})


def ask(page, question: str, button: str) -> None:
    page.locator("#question").fill(question)
    page.get_by_role("button", name=button, exact=True).click()
    expect(page.locator("#answer .ins-answer")).to_be_visible(timeout=60_000)
    expect(page.locator("#answer .ins-answer h2")).to_have_text(question)


def test_marketing_asks_in_both_languages_and_a_rep_gets_no_marketing_source(
    browser, live_server, people, tmp_path
):
    base = live_server["base"]
    files = [
        demo.pdf(tmp_path / name, title, pages)
        for name, title, _lang, _cat, _product, _roles, pages in (ANTICOAGULANTS, DIABETES)
    ]
    ctx, page = signed_in(browser, base, people["marketing"])
    try:
        # the library: two PDFs added for marketing only (the uploader's own role, by default)
        page.get_by_role("link", name="Insight").first.click()
        expect(page).to_have_url(f"{base}/insight")
        page.get_by_role("link", name="Documents").click()
        box = page.locator("#upload-box")
        if box.get_attribute("open") is None:
            box.locator("summary").click()
        expect(page.get_by_role("checkbox", name="Marketing")).to_be_checked()
        page.locator("#file").set_input_files([str(f) for f in files])
        page.get_by_label("Type de document").select_option("market_research")
        shots(page, "upload", "fr")
        page.get_by_role("button", name="Ajouter", exact=True).click()
        expect(page.locator("#toasts")).to_contain_text("2 documents ajoutés")
        # the list refreshes itself until both are indexed
        expect(page.locator('.ins-doc[data-state="indexed"]')).to_have_count(2, timeout=120_000)
        expect(page.locator(".ins-pending")).to_have_count(0)
        expect(page.locator(".ins-docs")).to_contain_text(ANTICOAGULANTS[1])
        assert serious_axe_violations(page) == []
        shots(page, "library", "fr")

        # a French question: the answer, its numbered sources, the page it cites
        page.get_by_role("link", name="Insight").first.click()
        assert serious_axe_violations(page) == []
        ask(page, FR_QUESTION, "Demander")
        answer = page.locator("#answer .ins-answer")
        expect(answer.locator(".ins-text")).to_contain_text("61")
        expect(answer.locator(".ins-cite a").first).to_be_visible()
        expect(answer.locator(".ins-source").first).to_contain_text(ANTICOAGULANTS[1])
        expect(page.locator("#history")).to_contain_text(FR_QUESTION)
        expect(page.locator("#question")).to_have_value("")
        assert serious_axe_violations(page) == []
        shots(page, "answer", "fr")

        answer.locator(".ins-source").first.get_by_role("link", name="Ouvrir à p. 4").click()
        expect(page).to_have_url(re.compile(r"/insight/documents/\d+\?page=4#p4$"))
        target = page.locator("#p4")
        expect(target).to_have_class(re.compile("is-target"))
        expect(target).to_be_in_viewport()
        expect(target).to_contain_text("61 % des médecins généralistes")
        pdf_link = target.get_by_role("link", name="PDF à la page 4")
        assert re.search(r"/insight/documents/\d+/file#page=4$", pdf_link.get_attribute("href"))
        assert serious_axe_violations(page) == []
        shots(page, "document", "fr")

        # the same in English
        page.locator("summary.user-btn").click()
        page.get_by_role("button", name="English").click()
        expect(page.get_by_role("heading", level=2, name="Passages")).to_be_visible()
        shots(page, "document", "en")
        page.goto(f"{base}/insight")
        ask(page, EN_QUESTION, "Ask")
        answer = page.locator("#answer .ins-answer")
        expect(answer.locator(".ins-text")).to_contain_text("24%")
        expect(answer.locator(".ins-source").first).to_contain_text(DIABETES[1])
        expect(answer.locator(".ins-source").first).to_contain_text("p. 2")
        # feedback swaps in a thanks
        answer.get_by_role("button", name="Useful", exact=True).click()
        expect(answer.locator(".ins-thanks")).to_be_visible()
        assert serious_axe_violations(page) == []
        shots(page, "answer", "en")
        page.goto(f"{base}/insight/documents")
        shots(page, "library", "en")
    finally:
        ctx.close()

    ctx, page = signed_in(browser, base, people["rep"])
    try:
        page.goto(f"{base}/insight/documents")
        expect(page.locator(".empty")).to_be_visible()
        assert ANTICOAGULANTS[1] not in page.content() and DIABETES[1] not in page.content()
        shots(page, "library-rep", "en")
        page.goto(f"{base}/insight")
        for question in (FR_QUESTION, EN_QUESTION):
            ask(page, question, "Ask")
            answer = page.locator("#answer .ins-answer")
            for title in (ANTICOAGULANTS[1], DIABETES[1]):
                expect(answer).not_to_contain_text(title)
            expect(answer.locator(".ins-text")).to_have_count(0)
            expect(answer).to_contain_text("The documents you can read do not answer")
        assert serious_axe_violations(page) == []
        shots(page, "refused-rep", "en")
    finally:
        ctx.close()


def test_help_desk_hand_over_medical_information_and_review_on_a_tablet(
    browser, live_server, people
):
    base = live_server["base"]
    question = "Can I bring my dog to the office on Fridays?"
    ctx, page = signed_in(browser, base, people["rep"])
    try:
        page.goto(f"{base}/insight")
        page.get_by_role("link", name="Help desk").click()
        ask(page, question, "Ask")
        expect(page.locator("#answer .ins-answer")).to_contain_text(
            "A person from the help desk will answer; your question was passed on."
        )
        assert serious_axe_violations(page) == []
        shots(page, "handover", "en")
    finally:
        ctx.close()

    ctx, page = signed_in(browser, base, people["admin"])
    try:
        page.goto(f"{base}/insight")
        page.get_by_role("link", name=re.compile("Questions transmises")).click()
        item = page.locator(".ins-handover", has_text=question)
        expect(item).to_be_visible()
        assert serious_axe_violations(page) == []
        shots(page, "handovers", "fr")
        item.get_by_label("Votre réponse").fill("Seuls les chiens guides sont admis au siège.")
        item.get_by_role("button", name="Envoyer la réponse").click()
        expect(page.locator(".ins-handover", has_text=question)).to_contain_text(
            "Réponse envoyée par Aline Admin"
        )
    finally:
        ctx.close()

    ctx, page = signed_in(browser, base, people["rep"])
    try:
        page.goto(f"{base}/insight?assistant=helpdesk")
        page.locator("#history").get_by_role("link", name=re.compile("bring my dog")).click()
        expect(page.locator(".ins-reply")).to_contain_text("Seuls les chiens guides")
        shots(page, "replied", "en")
    finally:
        ctx.close()

    # medical information: the HCP is chosen by name among the rep's own
    ctx, page = signed_in(browser, base, live_server["rep_email"])
    try:
        page.goto(f"{base}/insight?assistant=medinfo")
        page.get_by_label("HCP who asked").fill("Dup")
        page.get_by_label("Dr Marie Dupont · Lille").check()
        ask(page, "Can the dose be reduced in renal impairment?", "Ask")
        expect(page.locator("#answer .ins-answer")).to_contain_text("Marie Dupont")
        assert serious_axe_violations(page) == []
        shots(page, "medinfo", "en")
    finally:
        ctx.close()

    ctx, page = signed_in(browser, base, people["reviewer"])
    try:
        page.goto(f"{base}/insight")
        page.get_by_role("link", name=re.compile("À relire")).click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Information médicale à relire")
        assert serious_axe_violations(page) == []
        shots(page, "review", "fr")
    finally:
        ctx.close()
