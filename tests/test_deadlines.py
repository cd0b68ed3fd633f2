"""Working days, reminders, closing unanswered cases, the digest and the staff tools, driven by a
clock the tests control (across Christmas and Easter), against the real Dovecot + SMTP fixtures."""

from __future__ import annotations

import csv
import datetime as dt
import io
import subprocess
import sys
import time

import pytest
from sqlmodel import select

from intake.edges.store import Case, Store
from intake.core.workdays import Calendar
from tests.conftest import ROOT, Env
from tests.mailfactory import BODY, referral
from tests.test_daemon import place

UTC = dt.timezone.utc
NO_CPR = BODY.replace("CPR: 120385-1233\n", "")


@pytest.mark.parametrize("start,n,expected", [
    ("2026-12-22", 5, "2027-01-04"),  # 24, 25, 26, weekend, 31, 1 Jan off
    ("2027-03-23", 3, "2027-03-31"),  # Maundy Thursday, Good Friday, Easter Monday
    ("2026-06-04", 1, "2026-06-08"),  # Grundlovsdag (configured closed day), then a weekend
    ("2026-11-20", 10, "2026-12-04"),
])
def test_working_days(start, n, expected):
    cal = Calendar()
    assert cal.add(dt.date.fromisoformat(start), n) == dt.date.fromisoformat(expected)
    assert cal.between(dt.date.fromisoformat(start), dt.date.fromisoformat(expected)) == n


def test_extra_closed_days_are_configurable():
    cal = Calendar(["2026-11-23"])
    assert cal.add(dt.date(2026, 11, 20), 1) == dt.date(2026, 11, 24)
    assert Calendar([]).is_working_day(dt.date(2026, 12, 24))


def intake(env: Env, *args: str) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "intake", *args, "--config", str(env.config)],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    return p


def set_case(env: Env, **fields) -> Case:
    store = Store(f"sqlite:///{env.db}")
    with store.session() as s:
        case = s.exec(select(Case)).first()
        for k, v in fields.items():
            setattr(case, k, v)
        s.add(case)
    return case


@pytest.fixture
def staff_env(env: Env) -> Env:
    return env


def enable_staff(env: Env) -> None:
    """Give staff an address (after the daemon's own run, whose clock is the real one)."""
    env.config.write_text(env.config.read_text() + '\n[cases]\nstaff_address = "visitation@rn.dk"\n')


def subjects(smtp) -> list[str]:
    return [m["message"]["Subject"] for m in smtp.messages]


def test_reminder_then_closing_across_christmas(staff_env: Env, dovecot, smtp):
    env = staff_env
    dovecot.append(referral(NO_CPR, message_id="<dl@aalborg.dk>"))
    assert env.run_once().returncode == 0
    smtp.wait_for(1)
    friday = dt.datetime(2026, 12, 18, 9, 0, tzinfo=UTC)
    set_case(env, created_at=friday, waiting_since=friday)
    enable_staff(env)

    def remind(at: str) -> None:
        intake(env, "remind", "--now", at)
        time.sleep(0.2)

    remind("2026-12-28T05:00:00+01:00")  # 4 working days (Christmas off): nothing yet
    assert len(smtp.messages) == 1
    remind("2026-12-29T05:00:00+01:00")  # 5 working days: one reminder (before digest hour)
    assert len(smtp.messages) == 2 and subjects(smtp)[1].startswith("Påmindelse: henvisningen mangler")
    reminder = smtp.messages[1]["message"]
    assert reminder["Auto-Submitted"] == "auto-generated" and reminder["In-Reply-To"] == "<dl@aalborg.dk>"
    body = reminder.get_content()
    assert "CPR-nummer" in body and "14.01.2027" in body and "1233" not in body
    remind("2026-12-30T05:00:00+01:00")  # never a second reminder
    assert len(smtp.messages) == 2
    remind("2027-01-13T05:00:00+01:00")  # 14 working days: still open
    assert len(smtp.messages) == 2
    remind("2027-01-14T05:00:00+01:00")  # 15: closed, municipality and staff told
    assert len(smtp.messages) == 4
    to = {m["rcpt_tos"][0]: m["message"]["Subject"] for m in smtp.messages[2:]}
    assert to["mette.soerensen@aalborg.dk"].startswith("Henvisningen er lukket [SME-")
    assert to["visitation@rn.dk"].startswith("Sag lukket uden svar: SME-")
    remind("2027-01-20T05:00:00+01:00")
    assert len(smtp.messages) == 4
    out = intake(env, "cases", "list", "--status", "closed").stdout
    assert "closed" in out and "1 sager" in out


def test_reminders_survive_restarts_and_are_sent_once(staff_env: Env, dovecot, smtp):
    env = staff_env
    dovecot.append(referral(NO_CPR, message_id="<dl2@aalborg.dk>"))
    env.run_once()
    smtp.wait_for(1)
    start = dt.datetime(2027, 3, 22, 9, 0, tzinfo=UTC)  # Monday before Easter
    set_case(env, created_at=start, waiting_since=start)
    enable_staff(env)
    # 5 working days after 22 March 2027, Easter off: 23, 24, 30, 31 March, 1 April
    for at in ("2027-03-31T05:00:00+02:00", "2027-04-01T05:00:00+02:00", "2027-04-01T05:30:00+02:00"):
        intake(env, "remind", "--now", at)
    time.sleep(0.2)
    assert [s.split(":")[0] for s in subjects(smtp)] == ["Henvisningen mangler oplysninger [SME-2026-00001]", "Påmindelse"]


def test_daily_digest(staff_env: Env, dovecot, smtp):
    env = staff_env
    dovecot.append(referral(message_id="<d1@aalborg.dk>"))
    dovecot.append(referral(NO_CPR, message_id="<d2@aalborg.dk>"))
    env.run_once()
    smtp.wait_for(2)
    # an accepted case past its due date
    store = Store(f"sqlite:///{env.db}")
    with store.session() as s:
        acc = s.exec(select(Case).where(Case.status == "accepted")).first()
        acc.due_date = dt.date(2026, 11, 20)
        s.add(acc)
    enable_staff(env)
    intake(env, "remind", "--now", "2026-11-23T06:30:00+01:00")  # before the digest hour
    time.sleep(0.2)
    assert len(smtp.messages) == 2
    intake(env, "remind", "--now", "2026-11-23T07:05:00+01:00")
    intake(env, "remind", "--now", "2026-11-23T12:00:00+01:00")  # once a day
    time.sleep(0.2)
    assert len(smtp.messages) == 3
    d = smtp.messages[2]
    assert d["rcpt_tos"] == ["visitation@rn.dk"]
    text = d["message"].get_content()
    assert d["message"]["Subject"].startswith("Daglig oversigt 23.11.2026: 2 nye, 1 mangler, 1 over frist")
    assert "SME-2026-00001" in text and "SME-2026-00002" in text and "mangler: cpr" in text
    assert "Karen Lund" not in text and "120385" not in text
    intake(env, "remind", "--now", "2026-12-25T09:00:00+01:00")  # Christmas Day: no digest
    time.sleep(0.2)
    assert sum(s.startswith("Daglig oversigt") for s in subjects(smtp)) == 1


def test_staff_tools_and_invoicing_report(env: Env, dovecot, smtp):
    dovecot.append(referral(message_id="<r1@aalborg.dk>"))
    dovecot.append(referral(BODY.replace("psykologisk undersøgelse", "psykiatrisk speciallægeerklæring og psykologisk undersøgelse"),
                            from_="a@rebild.dk", message_id="<r2@rebild.dk>"))
    dovecot.append(referral(NO_CPR, message_id="<r3@aalborg.dk>"))
    env.run_once()
    smtp.wait_for(3)
    month = dt.date.today().strftime("%Y-%m")
    rows = list(csv.DictReader(io.StringIO(intake(env, "report", "--month", month).stdout)))
    got = {(r["municipality"], r["examination"]): int(r["accepted_referrals"]) for r in rows}
    assert got == {("Aalborg Kommune", "psykologisk_undersoegelse"): 1,
                   ("Rebild Kommune", "psykiatrisk_erklaering"): 1,
                   ("Rebild Kommune", "psykologisk_undersoegelse"): 1}
    listing = intake(env, "cases", "list").stdout
    assert "SME-2026-00003" in listing and "120385-XXXX" in listing and "1233" not in listing
    assert "ALDER" in listing and "3 sager" in listing
    shown = intake(env, "cases", "show", "SME-2026-00001").stdout
    assert "Karen Lund" in shown and "120385-XXXX" in shown and "Triage/Klar" in shown and "acknowledgement" in shown
    intake(env, "cases", "close", "SME-2026-00003", "--reason", "trukket tilbage")
    assert "closed" in intake(env, "cases", "show", "SME-2026-00003").stdout
    overdue = intake(env, "cases", "list", "--overdue", "--now", "2027-06-01T10:00:00+02:00").stdout
    assert "over frist" in overdue and "2 sager" in overdue


def test_requeue_after_a_config_change(tmp_path, dovecot, smtp, ca):
    env = Env(tmp_path, dovecot, smtp.port, ca)
    dovecot.append(referral(from_="a@test.example", message_id="<rq@test.example>"))
    env.run_once()
    assert len(place(dovecot.folder_messages())["Triage/Manuel"]) == 1
    env.config.write_text(env.config.read_text() + '\n[[triage.municipalities]]\nname = "Test"\ndomain = "test.example"\n')
    out = intake(env, "requeue", "--all").stdout
    assert out.startswith("1 besked")
    env.run_once()
    assert len(smtp.wait_for(1)) == 1
    folders = place(dovecot.folder_messages())
    assert folders["Triage/Manuel"] == [] and len(folders["Triage/Klar"]) == 1
    flags = dovecot.folder_messages()["Triage/Klar"][0][1]  # the old decision's keywords are gone
    assert b"sme-accepted" in flags and not {f for f in flags if f.startswith((b"sme-manual", b"grund-"))}


def test_requeue_finds_messages_in_reason_subfolders(tmp_path, dovecot, smtp, ca):
    """With `reason_subfolders` (Exchange: no keywords), manual mail sits in Triage/Manuel/<reason>:
    requeue looks there too."""
    env = Env(tmp_path, dovecot, smtp.port, ca, extra='\n[daemon]\nreason_subfolders = "always"\n')
    dovecot.append(referral(from_="a@test.example", message_id="<rqs@test.example>"))
    env.run_once()
    assert len(place(dovecot.folder_messages())["Triage/Manuel/sender_not_allowed"]) == 1
    env.config.write_text(env.config.read_text() + '\n[[triage.municipalities]]\nname = "Test"\ndomain = "test.example"\n')
    assert intake(env, "requeue", "--all").stdout.startswith("1 besked")
    env.run_once()
    assert len(smtp.wait_for(1)) == 1
    folders = place(dovecot.folder_messages())
    assert folders["Triage/Manuel/sender_not_allowed"] == [] and len(folders["Triage/Klar"]) == 1
