"""DKIM signatures written by parcours (OpenSSL through cryptography), checked by dkimpy."""

from __future__ import annotations

import subprocess

import dkim
import pytest

from parcours.core import mailer
from parcours.email import signing

DKIM_DOMAIN, DKIM_SELECTOR = "lab.example", "parcours2025"  # as tests/email/conftest.py

HEADERS = (
    "From",
    "From",
    "To",
    "Subject",
    "Subject",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "X-Not-There",
)


def _sign(raw: bytes, key) -> bytes:
    return signing.sign(
        raw, selector=DKIM_SELECTOR, domain=DKIM_DOMAIN, key_path=key.path, headers=HEADERS
    )


def _message(subject: str, text: str, html: str | None = None) -> bytes:
    msg = mailer.build(
        "dr.martin@chu-lille.example",
        subject,
        text,
        html=html,
        headers={"List-Unsubscribe": "<https://parcours.lab.example/u/abc.def>"},
    )
    return mailer.as_bytes(msg)


@pytest.fixture(autouse=True)
def _sender(env):
    env(mail_from="Laboratoire Éclair <no-reply@lab.example>")


def test_a_signed_message_verifies_with_dkimpy(rsa_key):
    subject = "Invitation à notre webinaire sur l'insuffisance cardiaque : " * 3
    raw = _message(subject, "Bonjour  \t docteur,\n\nà bientôt.   \n\n\n", "<p>Bonjour</p>")
    signed = _sign(raw, rsa_key)
    assert signed.endswith(raw) and signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
    assert dkim.verify(signed, dnsfunc=rsa_key.dnsfunc)
    header = signed[: len(signed) - len(raw)].decode()
    assert "c=relaxed/relaxed" in header and f"d={DKIM_DOMAIN}" in header
    # every line of the header field stays short; names absent from the message are left out
    assert all(len(line) <= 78 for line in header.split("\r\n"))
    tags = header.replace("\r\n\t", " ")
    assert "h=from:from:to:subject:subject:date:message-id:list-unsubscribe;" in tags


def test_changing_the_body_or_a_signed_header_breaks_the_signature(rsa_key):
    signed = _sign(_message("Update", "The approved phrase.\n"), rsa_key)
    assert dkim.verify(signed, dnsfunc=rsa_key.dnsfunc)
    for before, after in (
        (b"The approved phrase.", b"Some free text added."),
        (b"Subject: Update", b"Subject: Urgent"),
        (b"To: dr.martin@", b"To: dr.durand@"),
    ):
        tampered = signed.replace(before, after)
        assert tampered != signed and not dkim.verify(tampered, dnsfunc=rsa_key.dnsfunc)


def test_whitespace_changes_in_transit_keep_the_signature_valid(rsa_key):
    """relaxed/relaxed: a relay that refolds headers or strips trailing blanks is harmless."""
    signed = _sign(_message("Update", "Line one\nLine two\n"), rsa_key)
    relayed = signed.replace(b"Subject: Update", b"Subject:   Update  ")
    assert dkim.verify(relayed, dnsfunc=rsa_key.dnsfunc)
    assert dkim.verify(signed + b"\r\n\r\n", dnsfunc=rsa_key.dnsfunc)  # empty lines at the end


def test_an_empty_body_is_signed(rsa_key):
    raw = b"From: a@lab.example\r\nTo: b@example.test\r\nSubject: x\r\n\r\n"
    assert dkim.verify(_sign(raw, rsa_key), dnsfunc=rsa_key.dnsfunc)


def test_a_message_without_crlf_line_ends_is_refused(rsa_key):
    with pytest.raises(ValueError, match="CRLF"):
        _sign(b"From: a@lab.example\nSubject: x\n\nbody\n", rsa_key)


def test_a_replaced_key_file_is_read_again(rsa_key, tmp_path):
    path = tmp_path / "key.pem"
    path.write_bytes(rsa_key.path.read_bytes())
    first = signing.load_key(path)
    assert signing.load_key(path) is first  # parsed once
    subprocess.run(
        ["openssl", "genrsa", "-traditional", "-out", str(path), "2048"],
        check=True,
        capture_output=True,
    )
    assert signing.load_key(path) is not first


def test_a_key_that_is_not_rsa_is_refused(tmp_path):
    path = tmp_path / "ec.pem"
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        check=True,
        stdout=path.open("wb"),
    )
    with pytest.raises(ValueError, match="not an RSA private key"):
        signing.load_key(path)


def test_the_sender_name_and_subject_are_encoded_for_the_wire(rsa_key):
    raw = _message("Réunion à Lille", "Bonjour\n")
    assert raw.isascii()
    assert b"From: =?utf-8?q?Laboratoire_=C3=89clair?= <no-reply@lab.example>" in raw
    assert dkim.verify(_sign(raw, rsa_key), dnsfunc=rsa_key.dnsfunc)


def test_a_second_subject_or_sender_added_on_the_way_breaks_the_signature(rsa_key):
    """From and Subject are over-signed: their absence is signed too (RFC 6376 8.15)."""
    signed = _sign(_message("Update", "Body\n"), rsa_key)
    assert dkim.verify(signed, dnsfunc=rsa_key.dnsfunc)
    for added in (b"Subject: Urgent: your account\r\n", b"From: ceo@lab.example\r\n"):
        head, _, body = signed.partition(b"\r\n\r\n")
        tampered = head + b"\r\n" + added.rstrip(b"\r\n") + b"\r\n\r\n" + body
        assert not dkim.verify(tampered, dnsfunc=rsa_key.dnsfunc)


@pytest.mark.parametrize("field", ["to", "subject", "header"])
def test_a_line_break_in_a_header_value_is_refused(field):
    values = {"to": "a@example.test", "subject": "Update", "header": "1"}
    values[field] += "\nBcc: someone@evil.example"
    with pytest.raises(ValueError, match="one line"):
        mailer.build(values["to"], values["subject"], "Body", headers={"X-Test": values["header"]})
