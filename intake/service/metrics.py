"""Prometheus metrics of the daemon (prometheus-client, one dedicated registry) and their export.

Counters live in this process and start from zero at every start (Prometheus' rate() and
increase() handle resets; intake_start_time_seconds marks them). Gauges about the outbox are read
from the store at each scrape or textfile write, so they are true across restarts. Labels carry
decisions, reasons, kinds, states and error class names only: never addresses, names, subjects
or CPR numbers.

Export, as `[metrics]` in the config chooses (default: none): `listen = "127.0.0.1:9464"` serves
/metrics over HTTP; `textfile = ".../intake.prom"` rewrites a node_exporter textfile atomically
every `textfile_interval_seconds`.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

REGISTRY = CollectorRegistry(auto_describe=True)

MESSAGES = Counter("intake_messages", "Messages triaged and recorded, by decision and reason",
                   ["decision", "reason"], registry=REGISTRY)
REPLIES = Counter("intake_replies", "Outbox deliveries by reply kind and outcome (sent, deferred: "
                  "retried later, failed: given up, uncertain: interrupted mid-delivery, found at start)",
                  ["kind", "outcome"], registry=REGISTRY)
AUTH_FAILURES = Counter("intake_auth_failures", "Failed sign-ins, by protocol (imap, smtp)",
                        ["protocol"], registry=REGISTRY)
IMAP_ERRORS = Counter("intake_imap_errors", "IMAP connection errors, by error class", ["error"],
                      registry=REGISTRY)
IMAP_CONNECTED = Gauge("intake_imap_connected", "1 while the mailbox is connected and selected",
                       registry=REGISTRY)
LAST_SYNC = Gauge("intake_last_sync_timestamp_seconds",
                  "Unix time the inbox was last known to be fully processed", registry=REGISTRY)
STARTED = Gauge("intake_start_time_seconds", "Unix time the daemon started (counters reset then)",
                registry=REGISTRY)
TRIAGE_SECONDS = Histogram("intake_triage_seconds", "Time to triage one message (worker round trip)",
                           buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=REGISTRY)

for _p in ("imap", "smtp"):  # present from the start, so alerts see 0 rather than nothing
    AUTH_FAILURES.labels(_p)


def message_decided(decision: str, reason: str | None) -> None:
    MESSAGES.labels(decision, reason or "none").inc()


def reply_outcome(kind: str, outcome: str, n: int = 1) -> None:
    REPLIES.labels(kind, outcome).inc(n)


def auth_failure(protocol: str) -> None:
    """A refused sign-in (password or OAuth 2.0) or no token; `protocol` is "imap" or "smtp"."""
    AUTH_FAILURES.labels(protocol).inc()


def triage_seconds(seconds: float) -> None:
    TRIAGE_SECONDS.observe(seconds)


# --- from the store ----------------------------------------------------------------------------
def outbox_facts(engine, now: dt.datetime | None = None) -> dict:  # noqa: ANN001 - a SQLAlchemy engine
    """Outbox entries per state, and the age in seconds of the oldest pending one (0: none)."""
    from sqlalchemy import func
    from sqlmodel import Session, select

    from intake.edges.store import OutboxEntry, aware, utcnow

    now = now or utcnow()
    with Session(engine) as s:
        rows = s.exec(select(OutboxEntry.state, func.count(), func.min(OutboxEntry.created_at))
                      .group_by(OutboxEntry.state)).all()
    states = {state: n for state, n, _ in rows}
    oldest = [at for state, _, at in rows if state in ("pending", "sending") and at is not None]
    age = max(0.0, (now - aware(min(oldest))).total_seconds()) if oldest else 0.0
    return {"states": states, "oldest_pending_seconds": round(age, 1)}


class StoreCollector:
    """intake_outbox_entries{state} and intake_outbox_oldest_pending_age_seconds, read at collect
    time (the HTTP scrape's thread, or the textfile writer)."""

    STATES = ("pending", "sending", "sent", "failed", "uncertain")

    def __init__(self, engine) -> None:  # noqa: ANN001
        self.engine = engine

    def describe(self) -> list:
        return []

    def collect(self):  # noqa: ANN201
        try:
            facts = outbox_facts(self.engine)
        except Exception:  # the store is busy or gone: no outbox gauges this time
            return
        g = GaugeMetricFamily("intake_outbox_entries", "Outbox entries by state (pending = the queue)",
                              labels=["state"])
        for state in sorted(set(self.STATES) | set(facts["states"])):
            g.add_metric([state], facts["states"].get(state, 0))
        yield g
        yield GaugeMetricFamily("intake_outbox_oldest_pending_age_seconds",
                                "Age of the oldest reply waiting to be sent (0: none)",
                                value=facts["oldest_pending_seconds"])


def counters() -> dict:
    """The counters' current values, for the health file: {"messages": {decision: n},
    "replies": {outcome: n}, "auth_failures": {protocol: n}}."""
    out: dict[str, dict[str, float]] = {"messages": {}, "replies": {}, "auth_failures": {}}
    for metric, key, label in ((MESSAGES, "messages", "decision"), (REPLIES, "replies", "outcome"),
                               (AUTH_FAILURES, "auth_failures", "protocol")):
        for fam in metric.collect():
            for sample in fam.samples:
                if sample.name.endswith("_total"):
                    k = sample.labels[label]
                    out[key][k] = int(out[key].get(k, 0) + sample.value)
    return out


# --- export ------------------------------------------------------------------------------------
def parse_listen(listen: str) -> tuple[str, int]:
    """"127.0.0.1:9464" or "[::1]:9464" -> (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not host:port: {listen!r}")
    return host.strip("[]"), int(port)


def write_textfile(path: Path) -> None:
    """The registry in the text format, replaced atomically (node_exporter never reads half a
    file); mode 0644 so node_exporter can read it (there is nothing personal in it)."""
    from intake.service.health import write_atomic

    write_atomic(path, generate_latest(REGISTRY), mode=0o644)


class Exporter:
    """Starts what `[metrics]` asks for; `collect_store` registers the outbox gauges."""

    def __init__(self, cfg, engine=None) -> None:  # noqa: ANN001 - MetricsConfig, Engine
        self.cfg = cfg
        self.server = None
        self._store = StoreCollector(engine) if engine is not None else None
        STARTED.set(time.time())

    def start(self) -> None:
        if self._store is not None and (self.cfg.listen or self.cfg.textfile):
            try:
                REGISTRY.register(self._store)
            except ValueError:  # already registered (a second Daemon in one process: tests)
                pass
        if self.cfg.listen:
            from prometheus_client import start_http_server

            host, port = parse_listen(self.cfg.listen)
            try:
                self.server, _thread = start_http_server(port, addr=host, registry=REGISTRY)
            except OSError as e:  # the mail matters more than the metrics: go on without them
                from intake.service import logs

                logs.get("intake.service.metrics").error("metrics_listen_failed", listen=self.cfg.listen,
                                                         error=type(e).__name__)

    def write(self) -> None:
        if self.cfg.textfile:
            write_textfile(self.cfg.textfile)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self._store is not None:
            try:
                REGISTRY.unregister(self._store)
            except KeyError:
                pass
