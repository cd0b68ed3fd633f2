"""Configuration files and the log masking processor."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from intake.service import logs
from intake.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_example_config_documents_a_valid_file():
    s = load_settings(ROOT / "config" / "intake.example.toml")
    assert s.mailbox.security == "tls" and s.smtp.security == "starttls"
    assert s.folders.accepted == "Triage/Klar"


def test_three_sections_are_enough(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[mailbox]\nhost = "h"\nusername = "u"\npassword_file = "/p"\n'
                 '[smtp]\nhost = "s"\n[store]\nurl = "sqlite:///x.db"\n')
    s = load_settings(f)
    assert s.mailbox.port == 993 and s.smtp.port == 587 and s.mailbox.max_message_bytes == 100 * 1024 * 1024
    assert len(s.triage.municipalities) == 11


@pytest.mark.parametrize("text,word", [
    ('[mailbox]\nhost = "h"\nusername = "u"\npassword_file = "/p"\nsecurity = "plain"\n', "allow_plaintext"),
    ('[smtp]\nhost = "s"\nsecurity = "ssl"\n', "security"),
    ("[store]\nurl = \n", "TOML"),
    ('[mailbox]\nhost = "h"\nunknown_key = 1\n', "unknown_key"),
])
def test_bad_config_says_what_is_wrong(tmp_path, text, word):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_settings(f)
    assert word in str(e.value)


def test_log_processor_masks_anything_cpr_shaped():
    buf = io.StringIO()
    logs.configure("info", stream=buf)
    logs.get().info("x", note="CPR 120385-1233 og 1203851233", nested={"a": ["0607811953"]})
    line = buf.getvalue()
    assert "1233" not in line and "1953" not in line
    d = json.loads(line)
    assert d["note"] == "CPR 120385-XXXX og 120385-XXXX" and d["nested"] == {"a": ["060781-XXXX"]}
