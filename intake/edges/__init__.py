"""The edges: everything that does I/O — IMAP, SMTP, the store and its locks, gpg/openssl,
the triage worker processes, the test servers."""
