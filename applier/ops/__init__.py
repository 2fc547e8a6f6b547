"""What a DBA runs besides ``applier run``: preflight checks, status, check."""
