"""mts-applier: a multi-threaded replica applier for MySQL and MariaDB.

Packages, from the bottom up: ``db`` (servers: connections, error codes, quoting,
target table definitions), ``binlog`` (the format), ``pipeline`` (the data path, one
stage per module), ``ops`` (preflight, status, check), ``harness`` (local servers,
workloads, demo, bench). ``cli`` is the command line.
"""

__version__ = "0.1.0"
