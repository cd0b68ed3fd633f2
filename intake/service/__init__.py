"""The service: the daemon that joins core and edges, its scheduler, staff tools, logs, demo."""
