"""The decision core, pure: raw message bytes in, a decision out. No network, no database,
no clock beyond the `today` it is given. `intake triage` and the daemon share it."""
