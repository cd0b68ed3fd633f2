"""Follow-ups against the real Dovecot + SMTP fixtures: answers complete a case by themselves."""

from __future__ import annotations

import time

from tests.conftest import Env
from tests.mailfactory import BODY, PDF, plain, referral
from tests.test_daemon import place

NO_CPR = BODY.replace("CPR: 120385-1233\n", "")
PROBLEM_LINE = "Problemstilling: Det ønskes belyst, hvordan borgerens koncentrationsbesvær påvirker arbejdsevnen.\n"
NO_CPR_NO_PROBLEM = NO_CPR.replace(PROBLEM_LINE, "")


def answer(reply: dict, new_text: str, *, attachments=None, outlook: bool = True,
           subject_prefix: str = "SV: ", thread: bool = True, from_="Mette Sørensen <mette.soerensen@aalborg.dk>") -> bytes:
    """A caseworker's answer to our reply: new text on top, our reply quoted below."""
    m = reply["message"]
    quoted = m.get_content()
    if outlook == "bare":  # pasted without any marker at all
        history = "\n\n" + quoted
    elif outlook:  # Outlook quotes without '>' marks, under a header block
        history = ("\n\nFra: Socialmedicinsk Enhed <socialmedicin@rn.dk>\nSendt: 16. november 2026 09:15\n"
                   f"Til: Mette Sørensen\nEmne: {m['Subject']}\n\n{quoted}")
    else:
        history = "\n\n" + "\n".join("> " + ln for ln in quoted.splitlines())
    headers = {"In-Reply-To": m["Message-ID"], "References": m["Message-ID"]} if thread else {}
    body = new_text + history
    if attachments:
        return referral(body, subject=subject_prefix + m["Subject"], attachments=attachments, headers=headers, from_=from_)
    return plain(body, subject=subject_prefix + m["Subject"], headers=headers, from_=from_)


def folder_of(dovecot, message_id: str) -> list[str]:
    out = []
    for name, msgs in dovecot.folder_messages().items():
        for raw, _ in msgs:
            if f"Message-ID: {message_id}".encode() in raw:
                out.append(name)
    return out


def test_missing_cpr_answered_by_reply_completes_the_case(env: Env, dovecot, smtp):
    dovecot.append(referral(NO_CPR, message_id="<orig@aalborg.dk>"))
    assert env.run_once().returncode == 0
    first = smtp.wait_for(1)[0]
    assert first["message"]["Subject"].startswith("Henvisningen mangler oplysninger [SME-")
    ref = first["message"]["Subject"].split("[")[1].split("]")[0]
    assert folder_of(dovecot, "<orig@aalborg.dk>") == ["Triage/Mangler"]

    dovecot.append(answer(first, "Hej\n\nCPR-nummeret er 120385-1233.\n\nMvh Mette"))
    p = env.run_once()
    assert p.returncode == 0, p.stderr
    replies = smtp.wait_for(2)
    assert len(replies) == 2
    ack = replies[1]["message"]
    assert ack["Subject"].startswith(f"Henvisning modtaget [{ref}]")
    assert "Karen Lund (120385-XXXX)" in ack.get_content()
    assert ack["In-Reply-To"] and ack["Auto-Submitted"] == "auto-replied"
    folders = place(dovecot.folder_messages())
    assert folders["Triage/Mangler"] == [] and len(folders["Triage/Klar"]) == 2
    assert folders["INBOX"] == []
    for _raw, flags in dovecot.folder_messages()["Triage/Klar"]:  # keywords follow the case
        assert b"sme-accepted" in flags and b"sme-incomplete" not in flags and b"mangler-cpr" not in flags
    # nothing more on another run
    env.run_once()
    time.sleep(0.3)
    assert len(smtp.messages) == 2


def test_answer_that_only_quotes_our_reply_is_still_incomplete(env: Env, dovecot, smtp):
    dovecot.append(referral(NO_CPR_NO_PROBLEM, message_id="<orig2@aalborg.dk>"))
    env.run_once()
    first = smtp.wait_for(1)[0]
    assert "problemstilling" in first["message"].get_content()
    for outlook in (True, False, "bare"):
        dovecot.append(answer(first, "Hej, se nedenfor.", outlook=outlook))
    p = env.run_once()
    assert p.returncode == 0, p.stderr
    replies = smtp.wait_for(4)
    assert len(replies) == 4
    for r in replies[1:]:
        m = r["message"]
        assert m["Subject"].startswith("Henvisningen mangler oplysninger [SME-")
        text = m.get_content()
        assert "CPR-nummer" in text and "problemstilling" in text
    folders = place(dovecot.folder_messages())
    assert len(folders["Triage/Mangler"]) == 4 and folders["Triage/Klar"] == []


def test_one_reply_names_only_what_is_still_missing(env: Env, dovecot, smtp):
    dovecot.append(referral(NO_CPR_NO_PROBLEM, message_id="<orig3@aalborg.dk>"))
    env.run_once()
    first = smtp.wait_for(1)[0]
    dovecot.append(answer(first, "CPR: 120385-1233\n\nMvh Mette", subject_prefix="AW: Re: "))
    env.run_once()
    second = smtp.wait_for(2)[1]["message"]
    text = second.get_content()
    assert "problemstilling" in text and "CPR-nummer" not in text


def test_subject_reference_alone_links_the_case(env: Env, dovecot, smtp):
    dovecot.append(referral(NO_CPR, message_id="<orig4@aalborg.dk>"))
    env.run_once()
    first = smtp.wait_for(1)[0]
    dovecot.append(answer(first, "CPR: 120385-1233", thread=False, subject_prefix="VS: "))
    env.run_once()
    assert smtp.wait_for(2)[1]["message"]["Subject"].startswith("Henvisning modtaget [SME-")


def test_mismatching_cpr_goes_to_a_person(env: Env, dovecot, smtp):
    dovecot.append(referral(BODY.replace(PROBLEM_LINE, ""), message_id="<orig5@aalborg.dk>"))
    env.run_once()
    first = smtp.wait_for(1)[0]
    dovecot.append(answer(first, "Problemstilling: Det ønskes belyst, om borgeren kan arbejde.\nCPR: 060781-1953"))
    p = env.run_once()
    time.sleep(0.3)
    assert len(smtp.messages) == 1
    assert any(e.get("reason") == "cpr_mismatch" for e in map(__import__("json").loads, p.stdout.splitlines()))
    folders = place(dovecot.folder_messages())
    assert len(folders["Triage/Manuel"]) == 1 and len(folders["Triage/Mangler"]) == 1


def test_followup_to_a_redirected_case_goes_to_a_person_without_reply(env: Env, dovecot, smtp):
    dovecot.append(referral(BODY + "\nHenvisning til Klinisk Funktion.\n", message_id="<kf2@aalborg.dk>"))
    env.run_once()
    first = smtp.wait_for(1)[0]
    assert first["message"]["Subject"].startswith("Sendes via Mediconnect Proces [SME-")
    dovecot.append(answer(first, "Men vi vil gerne sende den som mail alligevel."))
    env.run_once()
    time.sleep(0.3)
    assert len(smtp.messages) == 1
    assert len(place(dovecot.folder_messages())["Triage/Manuel"]) == 1


def test_more_documents_for_an_accepted_case_join_it_without_reply(env: Env, dovecot, smtp):
    dovecot.append(referral(message_id="<acc@aalborg.dk>"))
    env.run_once()
    first = smtp.wait_for(1)[0]
    dovecot.append(answer(first, "Her er journalnotatet.", attachments=[("Journal.pdf", PDF, "application/pdf")]))
    env.run_once()
    time.sleep(0.3)
    assert len(smtp.messages) == 1
    assert len(place(dovecot.folder_messages())["Triage/Klar"]) == 2


def test_reply_limit_per_recipient(tmp_path, dovecot, smtp, ca):
    env = Env(tmp_path, dovecot, smtp.port, ca, extra="[reply_limits]\nper_recipient_per_10_minutes = 2\n")
    for i in range(3):
        dovecot.append(referral(message_id=f"<lim{i}@aalborg.dk>"))
    p = env.run_once()
    assert p.returncode == 0, p.stderr
    time.sleep(0.3)
    assert len(smtp.messages) == 2
    folders = place(dovecot.folder_messages())
    assert len(folders["Triage/Manuel"]) == 1 and len(folders["Triage/Klar"]) == 2
    (_raw, flags), = dovecot.folder_messages()["Triage/Manuel"]
    assert b"grund-reply_limit" in flags
