"""The adversarial corpus (tests/adversarial.py, built at test time) through `intake triage` and
through the daemon against a real Dovecot and SMTP sink.

What must hold for every message, however hostile:
- a result (one JSON line per file, in order), no crash, no internal error, bounded time;
- no reply subject or body holds a CPR number in any spelling (every dash, space, dot and
  digit class, zero-width characters inside), a URL, an e-mail address other than ours, a
  control or format character, or a greeting that is not a clean person name;
- a message whose body could not be read gets no reply;
- in the daemon: the inbox drains, every message lands in exactly one triage folder, the log
  holds no CPR number, and a normal referral behind the poison messages is still answered.

The CPR detector below is written independently of intake/core/textnorm.py and intake/core/cpr.py (a bug
there must not hide a leak here): it folds text the same way (NFKC, every Unicode dash,
space and format character) and then looks for DDMMYY-SSSS shapes with any separators, and
for each planted number's digits however they are split.
"""

from __future__ import annotations

import collections
import email.utils
import json
import re
import subprocess
import threading
import time
import unicodedata
from email import policy
from email.parser import BytesParser
from functools import lru_cache
from pathlib import Path

import pytest

from tests.adversarial import MARKERS, SECRETS, Case, cases

ROOT = Path(__file__).resolve().parent.parent
INTAKE = ROOT / ".venv" / "bin" / "intake"
OUR_ADDRESS = "socialmedicin@rn.dk"
MUNICIPAL = ("aalborg.dk", "bronderslev.dk", "frederikshavn.dk", "hjoerring.dk", "jammerbugt.dk", "laesoe.dk",
             "mariagerfjord.dk", "mors.dk", "rebild.dk", "thisted.dk", "vesthimmerland.dk")
PER_MESSAGE_SECONDS = 15.0  # generous: the worker's own CPU limit is 10 s per message
TOTAL_SECONDS = 150.0
NO_BODY = frozenset({"malformed_mime", "uncertain", "too_costly", "too_complex", "unreadable", "empty",
                     "header_too_large", "internal_error"})


# --- the detectors -------------------------------------------------------------------------------

def fold(text: str) -> str:
    """NFKC; every dash (Pd, minus signs) as "-", every space (Zs, TAB) as " ", the middle dots as
    ".", format characters (Cf: zero-width, bidi, soft hyphen) removed, other controls as " "."""
    out = []
    for ch in unicodedata.normalize("NFKC", text):
        cat = unicodedata.category(ch)
        if cat == "Cf":
            continue
        if cat == "Nd":  # every script's digits as ASCII (NFKC leaves Arabic-Indic ones alone)
            out.append(str(unicodedata.digit(ch)))
            continue
        if cat == "Pd" or ch in "\u2212\u2043\ufe63\uff0d\u2796":
            out.append("-")
        elif cat == "Zs" or ch == "\t":
            out.append(" ")
        elif ch in "\u00b7\u2024\u2027\u2219\u22c5":
            out.append(".")
        elif cat in ("Cc", "Zl", "Zp") and ch != "\n":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


_SEP = r"[ ]{0,2}[-./_]?[ ]{0,2}"
_CPR_SHAPE = re.compile(rf"(?<!\d)(\d\d){_SEP}(\d\d){_SEP}(\d\d){_SEP}(\d\d)[ ]?(\d\d)(?!\d)")
_LETTERS = re.compile(r"[^\W\d_]+")


def cpr_hits(text: str) -> list[str]:
    """CPR numbers in `text`, in any spelling: a DDMMYY-SSSS shape with a possible date (any
    separators), or a planted number's ten digits with only non-letters between them."""
    t = fold(text)
    hits = []
    for m in _CPR_SHAPE.finditer(t):
        dd, mm = int(m.group(1)), int(m.group(2))
        if 1 <= dd <= 31 and 1 <= mm <= 12:
            hits.append(m.group(0))
    return hits + secret_hits(t)


def secret_hits(text: str) -> list[str]:
    """The planted numbers only, however split (for text full of hashes and IDs, where any
    ten digits may look like a date)."""
    t = fold(text)
    hits = []
    for chunk in _LETTERS.split(t):
        digits = re.sub(r"\D", "", chunk)
        for s in SECRETS:  # as written, or with the year in four digits (12.03.1985-1233)
            if any(form in digits for form in (s, s[:4] + "19" + s[4:], s[:4] + "20" + s[4:])):
                hits.append(f"{s[:6]}…(planted, split as {chunk.strip()[:40]!r})")
    return hits


_URL = re.compile(r"\b[a-z][a-z0-9+.-]{0,15}:/+|\bwww\d?\.|\bmailto:|\bhxxps?", re.I)
_ADDRESS = re.compile(r"[^\s<>()\[\]\"',;:]+@[^\s<>()\[\]\"',;:]+")
_DOMAIN = re.compile(r"\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:example|com|net|org|ru|io|ly|xyz|info|eu|de|se|no|uk|app|"
                     r"link|top|biz|cn|dk)\b", re.I)
_WORD = r"[A-ZÆØÅÄÖÜÉÈÁ](?:[a-zæøåäöüéèáíóúñç]+(?:[-'’][A-ZÆØÅÄÖÜÉa-zæøå][a-zæøåäöüéèáíóúñç]+)*|\.)"
_IP = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
CLEAN_NAME = re.compile(rf"{_WORD}(?: (?:{_WORD}|von|van|de|der|af|la|le|du|da|di|el|al)){{1,5}}")


def text_problems(text: str, where: str) -> list[str]:
    """Leaks and injections in one text that leaves the system (a reply's subject or body)."""
    out = [f"{where}: CPR {h!r}" for h in cpr_hits(text)]
    t = fold(text)
    for rx, what in ((_URL, "URL"), (_DOMAIN, "domain name"), (_IP, "IP address")):
        for m in rx.finditer(t):
            if not (what == "domain name" and m.group(0).lower() == "rn.dk"):
                out.append(f"{where}: {what} {m.group(0)!r}")
    out += [f"{where}: e-mail address {a!r}" for a in _ADDRESS.findall(t) if a.lower().rstrip(".") != OUR_ADDRESS]
    out += [f"{where}: planted marker {mk!r}" for mk in MARKERS if mk in t.lower()]
    bad = sorted({f"U+{ord(ch):04X}" for ch in text if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Co", "Cs")
                  and ch != "\n"})
    if bad:
        out.append(f"{where}: control/format characters {', '.join(bad)}")
    return out


def reply_problems(subject: str, body: str, to: str) -> list[str]:
    out = text_problems(subject, "subject") + text_problems(body, "body")
    if "\n" in subject or "\r" in subject:
        out.append("subject: a line break")
    first = body.split("\n", 1)[0]
    m = re.fullmatch(r"Kære (.+)", first)
    if not m:
        out.append(f"body: greeting line {first[:60]!r}")
    elif m.group(1) != "sagsbehandler" and not CLEAN_NAME.fullmatch(m.group(1)):
        out.append(f"body: greeting is not a clean person name: {m.group(1)[:60]!r}")
    domain = to.rpartition("@")[2].lower()
    if not any(domain == d or domain.endswith("." + d) for d in MUNICIPAL):
        out.append(f"recipient {to!r} is not a municipal address")
    return out


def test_the_detector_finds_every_spelling():
    """The detector itself: every separator class, split digits; and no false alarm on a reply."""
    from tests.adversarial import _spellings

    for n in SECRETS:
        for kind, spelled in _spellings(n).items():
            assert cpr_hits(f"Emne: Henvisning {spelled} tak"), (n, kind)
    assert cpr_hits("Karen 12.03.85 - 1233") and cpr_hits("CPR 1203851233") and cpr_hits("010190-1234")
    clean = ("Kære sagsbehandler\n\nTak for henvisningen af Karen Lund (120385-XXXX). Modtaget 17.11.2025 kl. 10:00, "
             "frist 01.12.2025 [SME-2026-00042]. Skriv til socialmedicin@rn.dk.\n")
    assert reply_problems("Henvisning modtaget [SME-2026-00042]: Henvisning", clean, "a@jobcenter.aalborg.dk") == []
    assert reply_problems("x https://evil.example", "Kære Se www.x.dk\n", "eve@evil.example") != []


# --- the corpus ----------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def corpus() -> tuple[Case, ...]:
    return cases()


def test_the_corpus_is_big_and_varied():
    cs = corpus()
    by = collections.Counter(c.cls for c in cs)
    assert len(cs) >= 80, len(cs)
    assert all(n >= 8 for n in by.values()), by
    assert sum(len(c.raw) for c in cs) < 100_000_000


def _rss_sampler(pid: int, stop: threading.Event, peak: dict, current: dict) -> None:
    """Peak RSS of the intake process and of its worker child, with the file in hand."""
    import psutil

    try:
        proc = psutil.Process(pid)
    except psutil.Error:
        return
    while not stop.is_set():
        try:
            for p in [proc, *proc.children(recursive=True)]:
                rss = p.memory_info().rss
                key = "worker" if p.pid != pid else "cli"
                if rss > peak.get(key, (0, ""))[0]:
                    peak[key] = (rss, current.get("file", ""))
        except psutil.Error:
            pass
        stop.wait(0.05)


def _case_problems(case: Case, d: dict) -> list[str]:
    out = []
    reason = d.get("manual_reason")
    if reason == "internal_error":
        out.append(f"internal error: {d.get('error')}")
    if d["decision"] not in ("accepted", "incomplete", "redirect", "manual", "ignored"):
        out.append(f"unknown decision {d['decision']!r}")
    r = d.get("reply")
    if r:
        out += reply_problems(r["subject"], r["body"], r["to"])
        if d["decision"] not in ("accepted", "incomplete", "redirect"):
            out.append(f"a reply to a {d['decision']} message")
    if reason in NO_BODY and (r or d["decision"] != "manual"):
        out.append(f"{reason}: must be manual with no reply")
    if case.allowed is not None and d["decision"] not in case.allowed:
        out.append(f"decision {d['decision']} ({reason}) not in {sorted(case.allowed)}" + (f" [{case.note}]" if case.note else ""))
    if case.allowed == frozenset({"manual", "ignored"}) and r:
        out.append("the body could not be read, yet a reply was written")
    if case.manual_reasons is not None and (d["decision"] != "manual" or reason not in case.manual_reasons):
        out.append(f"expected manual/{sorted(case.manual_reasons)}, got {d['decision']}/{reason}")
    if d.get("cpr") is not None and not re.fullmatch(r"\d{6}-XXXX", d["cpr"]):
        out.append(f"cpr field not masked: {d['cpr']!r}")
    # the whole result (what the daemon stores: evidence, file names) but the Message-ID, which
    # threading needs verbatim
    rest = {k: v for k, v in d.items() if k not in ("message_id", "reply")}
    out += [f"result JSON: CPR {h!r}" for h in secret_hits(json.dumps(rest, ensure_ascii=False))]
    for suffix, sha in case.checks.get("sha256", {}).items():
        got = [a["sha256"] for a in d.get("attachments", []) if a["filename"].endswith(suffix)]
        if d["decision"] != "manual" and got != [sha]:
            out.append(f"attachment {suffix}: sha256 {got} is not the file's {sha[:12]}…")
    return out


def _table(rows: dict[str, list[tuple[str, float]]]) -> str:
    lines = [f"{'class':20} {'n':>4} {'max s':>7} {'mean s':>7}  decisions"]
    for cls, items in sorted(rows.items()):
        secs = [s for _d, s in items]
        counts = collections.Counter(d for d, _s in items)
        lines.append(f"{cls:20} {len(items):4d} {max(secs):7.2f} {sum(secs) / len(secs):7.2f}  "
                     + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return "\n".join(lines)


def test_every_message_through_intake_triage(tmp_path):
    cs = corpus()
    files = []
    for i, c in enumerate(cs):
        f = tmp_path / f"{i:03d}-{c.name}.eml"
        f.write_bytes(c.raw)
        files.append(str(f))
    t0 = time.monotonic()
    proc = subprocess.Popen([str(INTAKE), "triage", "--json", "--show-reply", *files], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop, peak, current = threading.Event(), {}, {"file": files[0]}
    sampler = threading.Thread(target=_rss_sampler, args=(proc.pid, stop, peak, current), daemon=True)
    sampler.start()
    err_chunks: list[str] = []
    err_reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)
    err_reader.start()
    watchdog = threading.Timer(TOTAL_SECONDS * 2, proc.kill)  # a stalled run ends, and fails below
    watchdog.start()
    results: list[tuple[dict, float]] = []
    last = t0
    try:
        for line in proc.stdout:
            now = time.monotonic()
            results.append((json.loads(line), now - last))
            last = now
            current["file"] = files[len(results)] if len(results) < len(files) else ""
    finally:
        proc.wait(60)
        watchdog.cancel()
        stop.set()
        err_reader.join(10)
    total = time.monotonic() - t0
    stderr = "".join(err_chunks)

    problems: list[str] = []
    if proc.returncode != 0:
        problems.append(f"intake triage exited {proc.returncode}: {stderr[-2000:]}")
    if "Traceback" in stderr:
        problems.append(f"a traceback on stderr: {stderr[-2000:]}")
    if len(results) != len(files):
        problems.append(f"{len(results)} results for {len(files)} files (stalled after {files[len(results)] if len(results) < len(files) else '?'})")
    rows: dict[str, list[tuple[str, float]]] = collections.defaultdict(list)
    slow = []
    for (d, secs), path, c in zip(results, files, cs):
        if d["file"] != path:
            problems.append(f"{c.name}: result for {d['file']} out of order")
        rows[c.cls].append((d["decision"] + (f"/{d['manual_reason']}" if d.get("manual_reason") else ""), secs))
        if secs > PER_MESSAGE_SECONDS:
            slow.append(f"{c.name}: {secs:.1f} s ({d['decision']}/{d.get('manual_reason')})")
        problems += [f"{c.name} ({c.cls}): {p}" for p in _case_problems(c, d)]
    problems += [f"too slow: {s}" for s in slow]
    if total > TOTAL_SECONDS:
        problems.append(f"the whole run took {total:.0f} s (bound {TOTAL_SECONDS:.0f} s)")
    secs = [s for _d, s in results]
    print(f"\n{len(results)} messages in {total:.1f} s; per message max {max(secs):.2f} s, mean {sum(secs) / len(secs):.3f} s")
    for key, (rss, f) in sorted(peak.items()):
        print(f"peak RSS {key}: {rss / 2**20:.0f} MB (while {Path(f).name if f else '-'})")
    print(_table(rows))
    slowest = sorted(zip(results, cs), key=lambda x: -x[0][1])[:8]
    print("slowest: " + ", ".join(f"{c.name} {secs:.1f} s ({d['decision']}/{d.get('manual_reason') or '-'})"
                                  for (d, secs), c in slowest))
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


# --- the daemon ----------------------------------------------------------------------------------

REFERRAL_BEHIND = "<behind-the-poison@aalborg.dk>"


def _norm(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def _loose(raw: bytes) -> bytes:
    """What Dovecot keeps of any bytes: line breaks become CRLF (bare CR and LF too), NUL 0x80."""
    return re.sub(rb"[\r\n]", b"", raw).replace(b"\0", b"\x80")


def _message_id(raw: bytes) -> str | None:
    m = re.search(rb"(?im)^message-id:\s*(<[^>\r\n]+>)", raw[:300_000])
    return m.group(1).decode("latin-1") if m else None


@pytest.fixture
def big_env(tmp_path, dovecot, smtp, ca):
    from tests.conftest import Env

    # one caseworker sends the whole corpus: lift the per-recipient reply limits, so that the
    # referral at the end is answered because the mailbox flows, not because of a quiet sender
    return Env(tmp_path, dovecot, smtp.port, ca,
               extra="[reply_limits]\nper_recipient_per_10_minutes = 100000\nper_recipient_per_day = 100000\n")


def test_the_daemon_drains_the_corpus_and_keeps_flowing(big_env, dovecot, smtp):
    from tests.mailfactory import referral

    env = big_env
    cs = corpus()
    appended: list[Case] = []
    refused: list[str] = []
    with dovecot.client() as c:  # one connection for the whole corpus
        for case in cs:
            try:
                c.append("INBOX", case.raw)
                appended.append(case)
            except Exception as e:  # the server refuses some bytes (an empty message): never seen by us
                refused.append(f"{case.name}: {type(e).__name__}: {str(e)[:80]}")
        good = referral(message_id=REFERRAL_BEHIND, from_="Hanne Bak <hanne.bak@hjoerring.dk>")
        c.append("INBOX", good)
    t0 = time.monotonic()
    p = env.run_once(timeout=230)
    took = time.monotonic() - t0
    problems: list[str] = []
    if p.returncode != 0:
        problems.append(f"intake run --once exited {p.returncode}: {p.stderr[-2000:]}")
    if "Traceback" in p.stderr:
        problems.append(f"a traceback on stderr: {p.stderr[-2000:]}")

    # every message in exactly one triage folder, the inbox empty
    folders = dovecot.folder_messages()
    if folders.get("INBOX"):
        problems.append(f"{len(folders['INBOX'])} message(s) left in INBOX")
    triage_folders = {k: v for k, v in folders.items() if k.startswith("Triage/")}
    by_norm: dict[bytes, list[str]] = collections.defaultdict(list)
    by_mid: dict[str, list[str]] = collections.defaultdict(list)
    by_loose: dict[bytes, list[str]] = collections.defaultdict(list)
    for name, msgs in triage_folders.items():
        for raw, _flags in msgs:
            by_norm[_norm(raw)].append(name)
            by_loose[_loose(raw)].append(name)
            mid = _message_id(raw)
            if mid:
                by_mid[mid].append(name)
    placed = collections.Counter()
    for case in appended:
        holders = by_norm.get(_norm(case.raw))
        if holders is None:  # the server rewrote the bytes (NUL, bare CR)
            holders = by_mid.get(_message_id(case.raw)) if _message_id(case.raw) else by_loose.get(_loose(case.raw))
        if not holders or len(holders) != 1:
            problems.append(f"{case.name}: in folders {holders}")
        else:
            placed[holders[0]] += 1
    stored = sum(len(v) for v in triage_folders.values())
    if stored != len(appended) + 1:
        problems.append(f"{stored} messages in the triage folders for {len(appended) + 1} appended")
    klar = [raw for raw, _f in triage_folders.get("Triage/Klar", [])]
    if not any(REFERRAL_BEHIND.encode() in raw for raw in klar):
        problems.append("the referral behind the poison messages is not in Triage/Klar")

    # the replies: no CPR, no URL, no foreign address, none to a manual message
    time.sleep(1.0)
    replies = list(smtp.messages)
    answered = [r for r in replies if r["message"]["In-Reply-To"] == REFERRAL_BEHIND]
    if len(answered) != 1:
        problems.append(f"the referral behind the poison messages got {len(answered)} replies")
    for r in replies:
        m = BytesParser(policy=policy.default).parsebytes(r["raw"])
        subject = str(m["Subject"] or "")
        body = m.get_content() if not m.is_multipart() else ""
        for to in r["rcpt_tos"]:
            problems += [f"reply to {m['In-Reply-To']}: {x}" for x in reply_problems(subject, body, to)]
        for name, value in m.items():  # every other header too (not the threading ones: they echo IDs)
            if name.lower() not in ("in-reply-to", "references", "subject", "message-id", "to"):
                problems += [f"reply to {m['In-Reply-To']}: header {x}" for x in text_problems(str(value), name)]
        sender = email.utils.parseaddr(str(m["From"]))[1]
        if sender != OUR_ADDRESS:
            problems.append(f"a reply from {sender!r}")

    # the store: no planted CPR number in any spelling (Message-IDs aside: kept verbatim for threading)
    import sqlite3

    con = sqlite3.connect(env.db)
    dump = "\n".join(con.iterdump())
    con.close()
    for case in appended:
        mid = _message_id(case.raw)
        if mid:
            dump = dump.replace(mid.strip("<>"), "message-id")
    problems += [f"store: CPR {h!r}" for h in secret_hits(dump)]

    # the log: no CPR in any form
    log = p.stdout + p.stderr
    problems += [f"log: CPR {h!r}" for h in cpr_hits(log)]
    events = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
    triaged = collections.Counter((e.get("decision"), e.get("reason")) for e in events if e.get("event") == "message_triaged")
    print(f"\ndaemon: {len(appended) + 1} messages drained in {took:.1f} s, {len(replies)} replies; "
          f"refused by Dovecot: {refused or 'none'}")
    print("folders: " + ", ".join(f"{k} {v}" for k, v in sorted(placed.items())))
    print("decisions: " + ", ".join(f"{d}/{r or '-'} {n}" for (d, r), n in sorted(triaged.items(), key=str)))
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems)


POISONS = ("html_60k_cells", "pdf_heavy_text", "qp_nul_text")
REFERRAL_AFTER = "<after-the-poison@aalborg.dk>"


@pytest.fixture
def tight_env(tmp_path, dovecot, smtp, ca):
    from tests.conftest import Env

    # a tight CPU limit per message, so that the poison messages certainly hit it
    return Env(tmp_path, dovecot, smtp.port, ca, extra="[triage.limits]\nworker_cpu_seconds = 1\n")


def test_a_poison_message_does_not_stop_the_mailbox(tight_env, dovecot, smtp):
    """Messages that kill the triage worker (CPU limit), then a normal referral: the poison is
    filed for a person (too_costly, no reply), the referral behind it is filed and answered."""
    from tests.mailfactory import referral

    env = tight_env
    by_name = {c.name: c for c in corpus()}
    for name in POISONS:
        dovecot.append(by_name[name].raw)
    dovecot.append(referral(message_id=REFERRAL_AFTER, from_="Hanne Bak <hanne.bak@hjoerring.dk>"))
    p = env.run_once(timeout=120)
    assert p.returncode == 0, p.stderr[-2000:]
    events = [json.loads(ln) for ln in p.stdout.splitlines() if ln.startswith("{")]
    costly = [e for e in events if e.get("event") == "message_triaged" and e.get("reason") == "too_costly"]
    assert costly, ("no poison hit the worker's 1 s CPU limit, so this test proves nothing: make the poison "
                    f"heavier; decisions: {[(e.get('decision'), e.get('reason')) for e in events if e.get('event') == 'message_triaged']}")
    folders = dovecot.folder_messages()
    assert folders["INBOX"] == []
    assert len(folders["Triage/Manuel"]) >= len(costly)
    assert any(REFERRAL_AFTER.encode() in raw for raw, _f in folders["Triage/Klar"]), "the referral behind the poison was not filed"
    smtp.wait_for(1, timeout=20)
    time.sleep(0.5)
    assert [r["message"]["In-Reply-To"] for r in smtp.messages] == [REFERRAL_AFTER], "only the referral is answered"
    assert cpr_hits(p.stdout + p.stderr) == []
    print(f"\npoison: {len(costly)} of {len(POISONS)} poison messages hit the limit (too_costly); the referral behind them was answered")
