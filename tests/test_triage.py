"""The decision core on the project's own fixtures: each rule, each trap, each charset."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re

import pytest

from intake.config import Settings
from intake.core.triage import triage
from tests.mailfactory import BODY, PDF, plain, raw_message, referral

TODAY = dt.date(2026, 11, 22)


def decide(raw: bytes, settings: Settings | None = None):
    result, _ = triage(raw, settings, today=TODAY)
    return result


def with_body(**replace) -> str:
    body = BODY
    for old, new in replace.items():
        body = body.replace(old.replace("_", " "), new)
    return body


# --- the complete referral and the reply -------------------------------------------------------

def test_complete_referral_is_accepted_with_every_field():
    r = decide(referral())
    assert r.decision == "accepted"
    assert r.missing == []
    assert r.name == "Karen Lund"
    assert r.cpr == "120385-XXXX"
    assert r.birth_date == "1985-03-12"
    assert r.phone == "+4520123456"  # the client's, not the caseworker's signature phone
    assert r.examinations == ["psykologisk_undersoegelse"]
    assert r.municipality == "Aalborg Kommune"
    assert r.reply.kind == "acknowledgement"
    assert r.reply.to == "mette.soerensen@aalborg.dk"


def test_reply_threads_and_is_marked_auto_replied():
    raw = referral(message_id="<abc@aalborg.dk>", headers={"References": "<older@aalborg.dk>"})
    r = decide(raw)
    d = r.reply.as_dict()
    assert d["headers"]["Auto-Submitted"] == "auto-replied"
    assert d["headers"]["In-Reply-To"] == "<abc@aalborg.dk>"
    assert d["headers"]["References"] == "<older@aalborg.dk> <abc@aalborg.dk>"
    msg = r.reply.to_email("socialmedicin@rn.dk", "Socialmedicinsk Enhed", "<x@rn.dk>")
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["In-Reply-To"] == "<abc@aalborg.dk>"


def test_reply_never_echoes_a_cpr_number_even_from_the_subject():
    raw = referral(subject="Henvisning: Karen Lund, 120385-1233 / 1203851233")
    r = decide(raw)
    for text in (r.reply.subject, r.reply.body):
        assert "1233" not in text
        assert not re.search(r"\d{6}[- ]?\d{4}", text)
    assert "120385-XXXX" in r.reply.subject


def test_reply_subject_never_holds_a_line_break():
    raw = referral(subject="=?utf-8?q?Henvisning=0D=0ABcc:_x@evil.example?=")
    r = decide(raw)
    assert "\n" not in r.reply.subject and "\r" not in r.reply.subject


def test_cpr_of_the_citizen_not_in_json_output():
    d = decide(referral()).as_dict()
    assert "1203851233" not in str(d) and "120385-1233" not in str(d)


# --- CPR numbers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("written", ["120385-1233", "1203851233", "120385 1233"])
def test_cpr_forms(written):
    r = decide(referral(with_body(**{"120385-1233": written})))
    assert r.cpr == "120385-XXXX"


def test_unlabelled_cpr_in_running_text():
    body = BODY.replace("CPR: 120385-1233\n", "").replace(
        "Navn: Karen Lund", "Navn: Karen Lund, født 120385-1233")
    assert decide(referral(body)).cpr == "120385-XXXX"


def test_cpr_in_subject_only():
    body = BODY.replace("CPR: 120385-1233\n", "")
    r = decide(referral(body, subject="Henvisning psykologisk undersøgelse 120385-1233"))
    assert r.cpr == "120385-XXXX"


@pytest.mark.parametrize("lookalike", [
    "EAN-nr.: 5798005770018",
    "KLE: 27.12.04-G01-3-24",
    "Sagsnr.: 120385-1234",
    "Tlf.: 20 12 34 56 / 2012345678",
    "Telefon 1203851233",
    "Dato: 12.03.1985 kl. 10:30",
    "Reg.nr. 1234 Kontonr. 0612345678",
    "Bankkonto: 1234-0612345678",
    "Journalnr. 0612345678",
    "IBAN DK5000400440116243",
    "CVR 12345678",
    "Ref: 2026-120385-1233-07",
])
def test_lookalikes_are_not_cpr_numbers(lookalike):
    body = BODY.replace("CPR: 120385-1233", lookalike)
    r = decide(referral(body))
    assert r.cpr is None
    assert r.decision == "incomplete" and "cpr" in r.missing


def test_same_number_twice_is_one_citizen():
    body = BODY.replace("CPR: 120385-1233", "CPR: 120385-1233\nCPR-nr. igen: 1203851233")
    r = decide(referral(body, subject="Henvisning 120385 1233"))
    assert r.decision == "accepted"


def test_two_different_numbers_go_to_a_person():
    body = BODY.replace("CPR: 120385-1233", "CPR: 120385-1233\nBarnets CPR: 010110-4021")
    r = decide(referral(body))
    assert (r.decision, r.manual_reason) == ("manual", "multiple_cpr")
    assert r.reply is None


def test_masked_number_is_no_number_and_the_reply_says_so():
    r = decide(referral(with_body(**{"120385-1233": "120385-xxxx"})))
    assert r.decision == "incomplete" and r.missing == ["cpr"]
    assert "skjult" in r.reply.body and "120385-XXXX" in r.reply.body


def test_impossible_date_is_missing_cpr_with_a_masked_hint():
    r = decide(referral(with_body(**{"120385-1233": "310285-1239"})))
    assert r.missing == ["cpr"]
    assert "310285-XXXX" in r.reply.body and "1239" not in r.reply.body


def test_numbers_after_2007_need_not_pass_modulus_11():
    # 7th digit 4 and year 10 -> born 2010; modulus 11 fails, still a valid CPR number
    r = decide(referral(with_body(**{"120385-1233": "010110-4021"})))
    assert r.cpr == "010110-XXXX" and r.birth_date == "2010-01-01"


def test_century_from_the_seventh_digit():
    r = decide(referral(with_body(**{"120385-1233": "010158-5021"})))
    assert r.birth_date == "1858-01-01"


def test_birth_date_in_the_future_is_not_valid():
    r = decide(referral(with_body(**{"120385-1233": "010130-4021"})))  # 2030
    assert r.cpr is None and "cpr" in r.missing


# --- name, phone, examination, problem ---------------------------------------------------------

@pytest.mark.parametrize("line", [
    "Navn: Karen Lund", "Borgers navn: Karen Lund", "Klientens navn: Karen Lund",
    "Borger: Karen Lund", "Borgerens fulde navn: Karen Lund", "Navn og CPR: Karen Lund, 120385-1233",
])
def test_name_labels(line):
    r = decide(referral(BODY.replace("Navn: Karen Lund", line)))
    assert r.name == "Karen Lund"


def test_name_keeps_danish_letters_exactly():
    r = decide(referral(BODY.replace("Karen Lund", "Jørgen Ærø Søgaard-Åby")))
    assert r.name == "Jørgen Ærø Søgaard-Åby"


def test_name_from_subject():
    body = BODY.replace("Navn: Karen Lund\n", "")
    r = decide(referral(body, subject="Henvisning: Karen Lund, psykologisk undersøgelse"))
    assert r.name == "Karen Lund"


def test_subject_without_a_name_gives_none():
    body = BODY.replace("Navn: Karen Lund\n", "")
    r = decide(referral(body, subject="Henvisning - psykologisk undersøgelse"))
    assert r.name is None and r.missing == ["name"]


def test_phone_is_optional():
    r = decide(referral(BODY.replace("Tlf.: 20 12 34 56\n", "")))
    assert r.phone is None and r.decision == "accepted"


@pytest.mark.parametrize("wording,code", [
    ("socialmedicinsk speciallægeerklæring", "socialmedicinsk_erklaering"),
    ("en socialmedicinsk undersøgelse", "socialmedicinsk_erklaering"),
    ("psykiatrisk speciallægeerklæring", "psykiatrisk_erklaering"),
    ("psykiatrisk erklæring", "psykiatrisk_erklaering"),
    ("psykologisk undersøgelse", "psykologisk_undersoegelse"),
    ("psykologundersøgelse", "psykologisk_undersoegelse"),
    ("psykologisk undersøgelse (PSYK 141 vedhæftet)", "psykologisk_undersoegelse"),
    ("arbejdsmarkedsrettede psykologsamtaler", "stoettende_samtaler"),
    ("5 støttende samtaler", "stoettende_samtaler"),
    ("støttende arbejdsmarkedsrettede psykologsamtaler", "stoettende_samtaler"),
])
def test_examination_wordings(wording, code):
    r = decide(referral(BODY.replace("psykologisk undersøgelse", wording), subject="Henvisning"))
    assert r.examinations == [code]


def test_several_examinations_at_once():
    body = BODY.replace("psykologisk undersøgelse", "psykiatrisk speciallægeerklæring og psykologisk undersøgelse")
    assert decide(referral(body)).examinations == ["psykiatrisk_erklaering", "psykologisk_undersoegelse"]


def test_greeting_socialmedicinsk_enhed_is_no_examination():
    body = BODY.replace("Hermed henvisning til psykologisk undersøgelse.", "Hermed henvisning.")
    r = decide(referral(body, subject="Henvisning"))
    assert r.examinations == [] and r.missing == ["examination"]
    assert "undersøgelse" in r.reply.body


def test_problem_missing():
    body = BODY.replace(
        "Problemstilling: Det ønskes belyst, hvordan borgerens koncentrationsbesvær påvirker arbejdsevnen.\n", "")
    r = decide(referral(body))
    assert r.missing == ["problem"] and "problemstilling" in r.reply.body


def test_problem_on_the_lines_after_its_label():
    body = BODY.replace("Problemstilling: Det", "Hvilken problemstilling ønskes belyst?\nDet")
    assert decide(referral(body)).decision == "accepted"


def test_problem_from_a_sentence_without_label():
    body = BODY.replace("Problemstilling: Det ønskes belyst,", "Vi ønsker en vurdering af,")
    assert decide(referral(body)).problem is not None


def test_everything_missing_lists_every_item():
    r = decide(plain("Hej\n\nHer er en henvisning.\n\nMvh\nA B", subject="Henvisning"))
    assert r.decision == "incomplete"
    assert r.missing == ["name", "cpr", "examination", "problem", "attachments"]
    for word in ("navn", "CPR", "undersøgelse", "problemstilling", "akter", "Svar blot på denne e-mail"):
        assert word in r.reply.body


# --- attachments ---------------------------------------------------------------------------------

def test_attachment_report():
    r = decide(referral(attachments=[("Sociale akter.pdf", PDF, "application/pdf")]))
    a = r.attachments[0]
    assert (a.filename, a.content_type, a.size) == ("Sociale akter.pdf", "application/pdf", len(PDF))
    assert a.sha256 == hashlib.sha256(PDF).hexdigest()


@pytest.mark.parametrize("evil,safe", [
    ("../../etc/passwd", "passwd"),
    ("C:\\Users\\mette\\Akter\\journal.pdf", "journal.pdf"),
    ("/tmp/x/.hidden.pdf", "hidden.pdf"),
    ("akt\x00er.pdf", "akter.pdf"),
    ("..", "bilag-1.pdf"),
])
def test_attachment_filenames_are_made_safe(evil, safe):
    r = decide(referral(attachments=[(evil, PDF, "application/pdf")]))
    assert r.attachments[0].filename == safe


def _with_signature_logo() -> bytes:
    html = '<p>Henvisning til psykologisk undersøgelse</p><img src="cid:logo@aalborg">'
    raw = raw_message(
        """From: Mette <ms@aalborg.dk>
To: socialmedicin@rn.dk
Subject: Henvisning
Message-ID: <logo@aalborg.dk>
MIME-Version: 1.0
Content-Type: multipart/related; boundary="rel"
""",
        ("--rel\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + BODY.replace("\n", "\r\n") +
         "\r\n--rel\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html +
         "\r\n--rel\r\nContent-Type: image/png\r\nContent-ID: <logo@aalborg>\r\n"
         "Content-Disposition: inline; filename=image001.png\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
         base64.b64encode(b"\x89PNG fake").decode() + "\r\n--rel--\r\n").encode("utf-8"),
    )
    return raw


def test_inline_signature_logo_is_not_a_case_file():
    r = decide(_with_signature_logo())
    assert r.attachments == [] and r.missing == ["attachments"]


def test_signature_parts_and_vcards_are_not_case_files():
    r = decide(referral(attachments=[("sig.asc", b"-----BEGIN PGP SIGNATURE-----", "application/pgp-signature"),
                                     ("Mette.vcf", b"BEGIN:VCARD", "text/vcard")]))
    assert r.attachments == []


# --- text sources and charsets -------------------------------------------------------------------

def test_html_table_with_entities_and_tags_splitting_the_number():
    html = """<html><body><p>Henvisning til <b>psykologisk unders&oslash;gelse</b>.</p>
<table><tr><td>Borgers navn</td><td>Mads Kristian Poulsen</td></tr>
<tr><td>CPR-nummer</td><td>011190<span>-</span>32<b>19</b></td></tr>
<tr><td>Problemstilling</td><td>Det &oslash;nskes belyst, om borgeren har en personlighedsforstyrrelse.</td></tr>
</table><script>var x = "1111111111";</script></body></html>"""
    r = decide(referral("", html=html, subject="Henvisning"))
    assert r.decision == "accepted", r.missing
    assert r.name == "Mads Kristian Poulsen" and r.cpr == "011190-XXXX"


@pytest.mark.parametrize("charset", ["utf-8", "iso-8859-1", "windows-1252"])
def test_declared_charsets(charset):
    body = BODY.replace("Karen Lund", "Søren Ærø") + "\nDato – 1. december\n"
    if charset == "iso-8859-1":
        body = body.replace("–", "-")
    r = decide(referral(body, charset=charset))
    assert r.name == "Søren Ærø" and r.decision == "accepted"


@pytest.mark.parametrize("cte", ["quoted-printable", "base64", "8bit"])
def test_latin1_transfer_encodings(cte):
    text = BODY.replace("Karen Lund", "Jørgen Søgaard").encode("iso-8859-1")
    if cte == "quoted-printable":
        import quopri
        payload = quopri.encodestring(text)
    elif cte == "base64":
        payload = base64.encodebytes(text)
    else:
        payload = text
    raw = raw_message(f"""From: A B <ab@aalborg.dk>
To: socialmedicin@rn.dk
Subject: Henvisning
Message-ID: <cte@aalborg.dk>
MIME-Version: 1.0
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: {cte}
""", payload)
    r = decide(raw)
    assert r.name == "Jørgen Søgaard" and r.cpr == "120385-XXXX"


def test_undeclared_8bit_latin1_and_utf8():
    for encoding in ("iso-8859-1", "utf-8"):
        raw = raw_message("""From: A B <ab@aalborg.dk>
To: socialmedicin@rn.dk
Subject: Henvisning
Message-ID: <u8@aalborg.dk>
""", BODY.replace("Karen Lund", "Åse Nørby").replace("\n", "\r\n").encode(encoding))
        assert decide(raw).name == "Åse Nørby", encoding


def test_8bit_header_without_encoding():
    raw = raw_message("From: A B <ab@aalborg.dk>\nTo: socialmedicin@rn.dk\nMessage-ID: <h@aalborg.dk>", b"")
    raw = raw.replace(b"\r\n\r\n", "\r\nSubject: Henvisning: Åse Nørby, psykologisk\r\n\r\n".encode("utf-8"), 1)
    raw += BODY.replace("Navn: Karen Lund\n", "").encode("utf-8")
    assert decide(raw).name == "Åse Nørby"


# --- machine mail ----------------------------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {"Auto-Submitted": "auto-replied"},
    {"Auto-Submitted": "auto-generated"},
    {"Auto-Submitted": "auto-notified; owner-email=x@aalborg.dk"},
    {"X-Autoreply": "yes"},
    {"X-Autorespond": "Out of office"},
    {"Precedence": "bulk"},
    {"Precedence": "junk"},
    {"Precedence": "list"},
    {"List-Id": "<nyheder.aalborg.dk>"},
    {"List-Unsubscribe": "<mailto:leave@aalborg.dk>"},
    {"Return-Path": "<>"},
])
def test_machine_mail_is_ignored(headers):
    r = decide(referral(headers=headers))
    assert r.decision == "ignored" and r.reply is None


def test_auto_submitted_no_is_a_person():
    assert decide(referral(headers={"Auto-Submitted": "no"})).decision == "accepted"


@pytest.mark.parametrize("sender", [
    "Mail Delivery System <MAILER-DAEMON@aalborg.dk>",
    "postmaster@aalborg.dk",
    "Socialmedicin <socialmedicin@rn.dk>",
    "SOCIALMEDICIN@RN.DK",
])
def test_daemons_and_our_own_mail_are_ignored(sender):
    assert decide(referral(from_=sender)).decision == "ignored"


def test_delivery_report_is_ignored():
    raw = raw_message("""From: Mette <ms@aalborg.dk>
To: socialmedicin@rn.dk
Subject: Read: Henvisning
Message-ID: <mdn@aalborg.dk>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification; boundary="r"
""", b"--r\r\nContent-Type: text/plain\r\n\r\nLaest.\r\n--r--\r\n")
    assert decide(raw).decision == "ignored"


def test_ignored_takes_precedence_over_sender():
    r = decide(referral(from_="x@gmail.com", headers={"Auto-Submitted": "auto-replied"}))
    assert r.decision == "ignored"


# --- senders -----------------------------------------------------------------------------------

@pytest.mark.parametrize("sender", [
    "a@aalborg.dk", "a@jobcenter.aalborg.dk", "a@LAESOE.DK", "x@vesthimmerland.dk", "x@mors.dk",
])
def test_municipal_senders_are_allowed(sender):
    assert decide(referral(from_=sender)).decision == "accepted"


@pytest.mark.parametrize("sender", [
    "jens.hansen1985@gmail.com",
    "a@aalborg.dk.example.net",
    "a@evilaalborg.dk",
    '"mette@aalborg.dk" <mette@gmail.com>',
    "Aalborg Kommune <a@aalborg-dk.com>",
    "a@aalborg.dk, b@gmail.com",
    "not an address",
])
def test_other_senders_go_to_a_person(sender):
    r = decide(referral(from_=sender))
    assert (r.decision, r.manual_reason) == ("manual", "sender_not_allowed")
    assert r.reply is None


def test_raw_utf8_display_name_is_not_a_defective_sender():
    """RFC 6532: Outlook and Exchange send "Mette Sørensen" as raw UTF-8; the address is fine."""
    raw = referral().replace(b"\nFrom: ", b"\nFrom: Mette S\xc3\xb8rensen <mette.soerensen@aalborg.dk>\nX-Old-From: ", 1)
    r = decide(raw)
    assert r.decision == "accepted" and r.reply.to == "mette.soerensen@aalborg.dk"
    assert "Mette Sørensen" in r.reply.body
    legacy = referral().replace(b"\nFrom: ", b"\nFrom: Mette S\xf8rensen <mette.soerensen@aalborg.dk>\nX-Old-From: ", 1)
    assert decide(legacy).reply.to == "mette.soerensen@aalborg.dk"
    # 8-bit bytes in the address itself stay a person's case
    eai = referral().replace(b"\nFrom: ", b"\nFrom: Mette <m\xc3\xb8@aalborg.dk>\nX-Old-From: ", 1)
    assert decide(eai).manual_reason == "sender_not_allowed"


def test_missing_from_goes_to_a_person():
    raw = referral().replace(b"\nFrom:", b"\nX-Old-From:")
    assert decide(raw).manual_reason == "sender_not_allowed"


def test_sender_check_precedes_redirect():
    r = decide(referral(from_="x@gmail.com", subject="Henvisning til Klinisk Funktion"))
    assert r.manual_reason == "sender_not_allowed"


def test_reply_to_is_used_only_when_itself_allowed():
    r = decide(referral(headers={"Reply-To": "team@jobcenter.aalborg.dk"}))
    assert r.reply.to == "team@jobcenter.aalborg.dk"
    r = decide(referral(headers={"Reply-To": "attacker@example.net"}))
    assert r.reply.to == "mette.soerensen@aalborg.dk"


def test_config_adds_municipalities(tmp_path):
    cfg = tmp_path / "intake.toml"
    cfg.write_text('[[triage.municipalities]]\nname = "Testkommune"\ndomain = "test.example"\n')
    from intake.config import load_settings
    s = load_settings(cfg)
    assert decide(referral(from_="a@test.example"), s).decision == "accepted"
    assert decide(referral(from_="a@aalborg.dk"), s).manual_reason == "sender_not_allowed"


# --- Mediconnect Proces ---------------------------------------------------------------------------

def _redirect(sentence: str, subject: str = "Henvisning"):
    return decide(referral(BODY.replace("Sociale og lægelige akter er vedhæftet.", sentence), subject=subject))


@pytest.mark.parametrize("sentence,reason", [
    ("Hermed henvisning til Klinisk Funktion; LÆ 271 er udfyldt.", "klinisk_funktion"),
    ("LÆ 271 er vedhæftet.", "klinisk_funktion"),
    ("Vi vurderer, at det er åbenbart formålsløst at udvikle arbejdsevnen.", "aabenbar_sag"),
    ("Sagen er en åbenbar sag efter pensionsloven § 18, stk. 2.", "aabenbar_sag"),
    ("Sagen ønskes på dagsorden til rehabiliteringsteammøde.", "rehabiliteringsteam"),
    ("Borgeren er i ressourceforløb, og vi har spørgsmål til planen.", "loebende_sag"),
    ("Borgeren er i jobafklaringsforløb.", "loebende_sag"),
    ("Det drejer sig om revurdering af fleksjob.", "loebende_sag"),
    ("Borgeren modtager tilskud til selvstændigt erhvervsdrivende.", "loebende_sag"),
    ("Borgeren modtager førtidspension.", "loebende_sag"),
    ("Vi har et spørgsmål til sundhedskoordinator.", "loebende_sag"),
    ("Borgeren modtager sygedagpenge og er visiteret til kategori 3.", "loebende_sag"),
])
def test_portal_cases_are_redirected(sentence, reason):
    r = _redirect(sentence)
    assert (r.decision, r.redirect_reason) == ("redirect", reason)
    assert r.reply.kind == "redirect" and "Mediconnect Proces" in r.reply.body


@pytest.mark.parametrize("sentence", [
    "Sagen er ikke omfattet af Klinisk Funktion.",
    "Henvisning til Socialmedicinsk Enhed på sag, der IKKE er omfattet af Klinisk Funktion.",
    "Sagen skal ikke på rehabiliteringsteammøde.",
    "Borgeren har tidligere været på rehabiliteringsteammøde i 2023.",
    "Borgeren var i ressourceforløb i 2022.",
    "Borgeren er ikke i ressourceforløb.",
    "Ressourceforløbet blev afsluttet i foråret.",
    "Borgeren er sygemeldt fra sit job.",
])
def test_negations_and_the_past_do_not_redirect(sentence):
    r = _redirect(sentence)
    assert r.decision == "accepted", r.redirect_reason


def test_redirect_precedence():
    r = _redirect("Henvisning til Klinisk Funktion i en åbenbar sag; borgeren er i ressourceforløb.")
    assert r.redirect_reason == "klinisk_funktion"
    r = _redirect("Åbenbar sag til rehabiliteringsteammøde.")
    assert r.redirect_reason == "aabenbar_sag"
    r = _redirect("Sag til rehabiliteringsteammøde; borgeren er i ressourceforløb.")
    assert r.redirect_reason == "rehabiliteringsteam"


def test_aabenbar_reply_names_the_subtype():
    r = _redirect("Vi vurderer, at det er åbenbart formålsløst at udvikle arbejdsevnen.")
    assert "åbenbart formålsløst" in r.reply.body
    assert "50 MB" in r.reply.body


def test_kf_reply_names_lae_271_and_the_sundhedskoordinator():
    r = _redirect("Henvisning til Klinisk Funktion.")
    assert "LÆ 271" in r.reply.body and "sundhedskoordinator" in r.reply.body


def test_redirect_from_subject():
    r = _redirect("Akter vedhæftet.", subject="Sag til rehabiliteringsteammøde")
    assert r.redirect_reason == "rehabiliteringsteam"


def test_quoted_history_is_not_read_as_a_request():
    body = BODY + "\n> Sagen skal på rehabiliteringsteammøde\n"
    assert decide(referral(body)).decision == "accepted"


# --- bad input: a result, never a crash ----------------------------------------------------------

def _deep(n: int) -> bytes:
    head = b"From: a@aalborg.dk\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    opens = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(n))
    closes = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(n)))
    return head + opens + b"Content-Type: text/plain\r\n\r\nhej" + closes


@pytest.mark.parametrize("raw,reason", [
    (b"", "empty"),
    (b"   \r\n\r\n  ", "empty"),
    (bytes(range(256)) * 40, "unreadable"),
    (b"\x00\xff\xfe garbage \x89PNG\r\n\x1a\n" * 1000, "unreadable"),
    (b"From: a@aalborg.dk\r\nSubject: " + b"x" * 2_000_000 + b"\r\n\r\nbody", "header_too_large"),
    (_deep(3000), "too_complex"),
])
def test_bad_input_gets_manual_with_a_reason(raw, reason):
    r = decide(raw)
    assert (r.decision, r.manual_reason) == ("manual", reason)
    assert r.reply is None


def test_too_many_parts():
    parts = b"".join(b"--b\r\nContent-Type: application/pdf\r\n\r\nx\r\n" for _ in range(5000))
    raw = b'From: a@aalborg.dk\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n' + parts + b"--b--\r\n"
    assert decide(raw).manual_reason == "too_complex"


@pytest.mark.parametrize("raw", [
    # no closing boundary, broken base64, header line without colon, bad charset name, lone CR
    b'From: a@aalborg.dk\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
    b"Content-Type: text/plain; charset=x-unknown-7\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64@@\r\n",
    b"From: a@aalborg.dk\r\nthis line has no colon\r\nSubject: x\r\n\r\nbody\r",
    b'From: a@aalborg.dk\r\nContent-Type: multipart/mixed\r\n\r\nno boundary parameter at all',
    b'From: =?utf-8?b?!!!?= <a@aalborg.dk>\r\nSubject: =?x-bogus?q?abc?=\r\nContent-Type: text/plain; charset="\r\n\r\nx',
])
def test_broken_mime_never_crashes(raw):
    r = decide(raw)
    assert r.decision in ("manual", "incomplete", "accepted")


def test_garbage_after_valid_headers_gets_no_missing_items_reply():
    # issue 12: a "missing items" reply only to what is plainly a referral (was: incomplete)
    raw = b"From: A <a@aalborg.dk>\r\nSubject: x\r\n\r\n" + bytes(range(256)) * 100
    r = decide(raw)
    assert (r.decision, r.manual_reason, r.reply) == ("manual", "uncertain", None)


@pytest.mark.parametrize("subject,expected", [
    ("Henvisning til psykologisk undersøgelse", "Henvisning til psykologisk undersøgelse"),
    ("SV: Henvisningen mangler oplysninger [SME-2026-00001]: Henvisning til psykologisk undersøgelse",
     "Henvisning til psykologisk undersøgelse"),
    ("AW: Re: VS: Henvisning modtaget [SME-2026-00012]: Henvisning", "Henvisning"),
    ("Re: [SME-2026-00003] CPR-nummer", "CPR-nummer"),
    ("Re:", "Re:"),
])
def test_reply_subjects_do_not_grow_along_a_thread(subject, expected):
    from intake.core.triage import original_subject
    assert original_subject(subject) == expected
