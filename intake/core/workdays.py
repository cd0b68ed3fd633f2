"""Danish working days: no weekends, no public holidays (the `holidays` package, country DK),
no configured extra closed days (default 5 June, 24 and 31 December)."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import holidays


class Calendar:
    def __init__(self, extra_closed: list[str] | tuple[str, ...] = ("06-05", "12-24", "12-31")) -> None:
        self.recurring = {s for s in extra_closed if len(s) == 5}  # "MM-DD", every year
        self.dates = {dt.date.fromisoformat(s) for s in extra_closed if len(s) == 10}

    @staticmethod
    @lru_cache(maxsize=64)
    def _public(year: int) -> frozenset[dt.date]:
        return frozenset(holidays.country_holidays("DK", years=year))

    def is_working_day(self, d: dt.date) -> bool:
        return (d.weekday() < 5 and d not in self._public(d.year)
                and d.strftime("%m-%d") not in self.recurring and d not in self.dates)

    def add(self, start: dt.date, days: int) -> dt.date:
        """The date `days` working days after `start` (start itself not counted)."""
        d = start
        while days > 0:
            d += dt.timedelta(days=1)
            if self.is_working_day(d):
                days -= 1
        return d

    def between(self, start: dt.date, end: dt.date) -> int:
        """Working days after `start` up to and including `end` (0 if end <= start)."""
        n, d = 0, start
        while d < end:
            d += dt.timedelta(days=1)
            if self.is_working_day(d):
                n += 1
        return n
