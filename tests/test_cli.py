"""`intake triage` as the contract describes it: JSON Lines in input order, exit 0, no traceback."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.mailfactory import referral


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "intake", *args], capture_output=True, text=True, timeout=120)


def test_json_lines_in_input_order(tmp_path):
    good = tmp_path / "a.eml"
    good.write_bytes(referral())
    empty = tmp_path / "b.eml"
    empty.write_bytes(b"")
    garbage = tmp_path / "c.eml"
    garbage.write_bytes(bytes(range(256)) * 10)
    missing = tmp_path / "does-not-exist.eml"
    p = run("triage", "--json", str(good), str(empty), str(garbage), str(missing))
    assert p.returncode == 0, p.stderr
    lines = [json.loads(ln) for ln in p.stdout.splitlines()]
    assert [d["file"] for d in lines] == [str(good), str(empty), str(garbage), str(missing)]
    assert [d["decision"] for d in lines] == ["accepted", "manual", "manual", "manual"]
    keys = {"file", "decision", "manual_reason", "redirect_reason", "missing", "examinations", "name",
            "cpr", "birth_date", "phone", "attachments", "reply"}
    assert keys <= set(lines[0])
    assert {"kind", "to", "subject", "body"} <= set(lines[0]["reply"])
    assert "Traceback" not in p.stderr


def test_readable_output_and_config(tmp_path):
    f = tmp_path / "a.eml"
    f.write_bytes(referral(from_="a@test.example"))
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[triage.municipalities]]\nname = "Test"\ndomain = "test.example"\n')
    p = run("triage", "--config", str(cfg), str(f))
    assert p.returncode == 0
    assert "accepted" in p.stdout and "120385-XXXX" in p.stdout and "1233" not in p.stdout


def test_bad_config_is_a_clear_error(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[mailbox]\nhost = 1\nsecurity = 'plain'\n")
    p = run("triage", "--config", str(cfg), str(cfg))
    assert p.returncode == 2 and "invalid" in p.stderr and "Traceback" not in p.stderr
