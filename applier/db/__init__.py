"""Talking to MySQL/MariaDB servers: connections, error codes, SQL quoting, the target's
table definitions. The lowest layer: it imports nothing from the binlog or pipeline."""
