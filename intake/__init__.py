"""sme-intake: secure e-mail intake and triage for Socialmedicinsk Enhed, Region Nordjylland."""

__version__ = "0.1.0"
