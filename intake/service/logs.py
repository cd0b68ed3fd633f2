"""Structured logs for ops: structlog, one JSON object per line on stdout (journald reads it).

Every event passes `mask_cpr`, which masks anything CPR-shaped in every value, whatever the
caller passed. Callers log IDs and decisions, never bodies, subjects or names.
"""

from __future__ import annotations

import logging
import sys

import structlog

from intake.core.cpr import mask_strict


def _mask(value):
    if isinstance(value, str):
        return mask_strict(value)
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_mask(v) for v in value)
    return value


def mask_cpr(_logger, _method, event_dict: dict) -> dict:
    return {k: _mask(v) for k, v in event_dict.items()}


def configure(level: str = "info", stream=None) -> None:
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            mask_cpr,  # nothing CPR-shaped reaches the output
            # our own timestamp after masking: "15:11:25.041234" would read as a date + 4 digits
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )


def get(name: str = "intake"):
    return structlog.get_logger(name)
