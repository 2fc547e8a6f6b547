"""mts-applier: a multi-threaded replica applier for MySQL and MariaDB.

The data path, one module per stage: source -> transactions -> schema -> writeset ->
scheduler -> workers -> target -> checkpoint. ``coordinator`` wires them together.
"""

__version__ = "0.1.0"
