"""Load the keyword data in `config/rules.toml` into compiled patterns (no matching here)."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from intake.resources import default_rules_file

_FLAGS = re.IGNORECASE | re.UNICODE


def _alt(patterns: list[str]) -> str:
    return "(?:" + "|".join(f"(?:{p})" for p in patterns) + ")"


@dataclass(frozen=True)
class Examination:
    code: str
    label: str
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class RedirectRule:
    reason: str
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class Rules:
    examinations: tuple[Examination, ...]
    name_label: re.Pattern[str]
    subject_name: re.Pattern[str]
    not_name_words: frozenset[str]
    problem_label: re.Pattern[str]
    problem_phrase: re.Pattern[str]
    problem_min_letters: int
    phone_label: re.Pattern[str]
    signature_start: re.Pattern[str]
    cpr_label: re.Pattern[str]
    not_cpr_label: re.Pattern[str]
    redirect_rules: tuple[RedirectRule, ...]
    redirect_window_words: int
    redirect_before_cue: re.Pattern[str]
    redirect_after_cue: re.Pattern[str]

    def examination_label(self, code: str) -> str:
        for e in self.examinations:
            if e.code == code:
                return e.label
        return code


def _label_line(labels: list[str]) -> re.Pattern[str]:
    # "Label: value" at the start of a line (tables arrive as "cell<TAB>cell").
    return re.compile(r"^[ \t>*•\-]*" + _alt(labels) + r"[ \t]*(?::|\t|\s-\s)[ \t]*(?P<value>.*)$", _FLAGS | re.M)


def compile_rules(data: dict) -> Rules:
    exams = tuple(
        Examination(code, spec["label"], re.compile(_alt(spec["patterns"]), _FLAGS))
        for code, spec in data["examinations"].items()
    )
    name = data["name"]
    subject_name = re.compile(
        r"^\s*" + _alt(name["subject_prefixes"]) + r"\s*[:\-–]\s*(?P<value>[^,;:()\[\]]+)", _FLAGS
    )
    prob = data["problem"]
    red = data["redirect"]
    words = int(red.get("window_words", 6))
    before = re.compile(r"\b" + _alt(red["negation_cues"] + red["past_cues"]) + r"\b", _FLAGS)
    after = re.compile(r"^\W{0,3}" + _alt(red["after_cues"]) + r"\b", _FLAGS)
    rules = tuple(
        RedirectRule(r["reason"], re.compile(_alt(r["patterns"]), _FLAGS)) for r in red["rules"]
    )
    return Rules(
        examinations=exams,
        name_label=_label_line(name["labels"]),
        subject_name=subject_name,
        not_name_words=frozenset(w.lower() for w in name["not_name_words"]),
        problem_label=_label_line(prob["labels"]),
        problem_phrase=re.compile(_alt(prob["phrases"]), _FLAGS),
        problem_min_letters=int(prob.get("min_letters", 12)),
        phone_label=_label_line(data["phone"]["labels"]),
        signature_start=re.compile(_alt(data["signature"]["starts"]), _FLAGS | re.M),
        cpr_label=re.compile(r"\b" + _alt(data["cpr"]["labels"]), _FLAGS),
        not_cpr_label=re.compile(r"\b" + _alt(data["cpr"]["not_cpr_labels"]) + r"\b", _FLAGS),
        redirect_rules=rules,
        redirect_window_words=words,
        redirect_before_cue=before,
        redirect_after_cue=after,
    )


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime: float) -> Rules:
    with open(path, "rb") as f:
        return compile_rules(tomllib.load(f))


def load_rules(path: str | Path | None = None) -> Rules:
    p = Path(path) if path else default_rules_file()
    return _load_cached(str(p), p.stat().st_mtime)
