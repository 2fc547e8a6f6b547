"""Exception hierarchy. Every error names the setting or server at fault and what to do.

The CLI prints ``str(error)`` on one line and exits non-zero; nothing here ever carries
a password.
"""

from __future__ import annotations


class ApplierError(Exception):
    """Base of every error the applier raises on purpose."""

    exit_code = 1


class ConfigError(ApplierError):
    """A bad config file, key or value."""

    exit_code = 2


class SourceError(ApplierError):
    """The source server cannot be used as configured (format, image, binlog, grants)."""

    exit_code = 3


class ConnectError(ApplierError):
    """A server is unreachable or refuses the credentials."""

    exit_code = 4


class BinlogPurgedError(SourceError):
    """The position to resume from is no longer on the source."""


class TargetError(ApplierError):
    """The target refused a statement; the transaction was rolled back."""

    exit_code = 5


class TargetLost(TargetError):
    """The connection to the target broke (restart, network, killed): nothing of the open
    transaction committed, or it committed with its checkpoint; ``applier run`` resumes
    from the checkpoint, after reconnecting when it can."""


class SchemaError(TargetError):
    """A table seen in the binlog is missing or different on the target."""


class DecodeError(ApplierError):
    """A binlog event could not be decoded."""

    exit_code = 6


class WorkerDied(ApplierError):
    """A worker process exited unexpectedly; the checkpoint makes the run restartable."""

    exit_code = 7


class Busy(ApplierError):
    """Another applier holds the checkpoint schema on the target."""

    exit_code = 9


class Divergence(ApplierError):
    """``applier check`` found a difference between source and target."""

    exit_code = 8
