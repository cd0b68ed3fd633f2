"""Locate the data that ships with the project: `config/` and `templates/`.

In a wheel they are packed under `intake/_data/`; in a source checkout (editable install)
they stand at the top of the repository, next to `intake/`.
"""

from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the folder `name` ("config" or "templates") wherever it was installed."""
    for candidate in (_PKG / "_data" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"sme-intake data folder {name!r} not found next to {_PKG}")


def default_rules_file() -> Path:
    return data_dir("config") / "rules.toml"


def templates_dir() -> Path:
    return data_dir("templates")
