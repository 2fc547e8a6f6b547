"""Exception hierarchy. Every error names the setting or server at fault and what to do.

The CLI prints ``str(error)`` on one line and exits non-zero; nothing here ever carries
a password.

Exit codes. "Restart" says what a service manager should do when ``applier run`` exits
with the code (``examples/applier.service``: ``Restart=on-failure`` with
``RestartPreventExitStatus=2 3 5 6 8 9``). Restarting is always *safe* (every batch
commits with its checkpoint, so a restart resumes exactly where the last commit
ended); "fix first" means a restart would fail the same way until someone acts.

====  ==================================  ==============================================  ==========
code  class                               meaning                                         restart
====  ==================================  ==============================================  ==========
0     (none)                              done: caught up (``--stop-at-end``), reached    no
                                          the UNTIL position, or stopped by SIGTERM/
                                          SIGINT after its last commit
1     ApplierError (and any unexpected    an error without a family of its own, or a      yes
      exception: a bug, with a            bug; the checkpoint makes a retry safe
      traceback)
2     ConfigError (click usage errors     a bad config file, key, value or flag; a start  fix first
      also exit 2)                        position the checkpoint contradicts; a target
                                          handed back to its native replica
3     SourceError, BinlogPurgedError      the source cannot be used as configured         fix first
                                          (binlog off, format or row image not ROW/FULL,
                                          grants, compression/encryption, the position
                                          to resume from is purged)
4     ConnectError, TargetLost            a server is unreachable, or refuses the         yes
                                          credentials; the target connection stayed
                                          lost through ``[target] reconnect_attempts``
                                          (a restart resumes from the checkpoint)
5     TargetError, SchemaError            the target refused a statement: a missing or    fix first
                                          duplicate row (divergence), a table missing or
                                          different, deadlock retries used up
6     DecodeError                         a binlog event could not be decoded             fix first
7     WorkerDied                          a worker process exited unexpectedly (e.g.      yes
                                          killed by the OOM killer)
8     Divergence                          ``applier check`` found differences (``run``    fix first
                                          does not exit 8)
9     Busy                                another applier holds the checkpoint schema     fix first
                                          (its lock is released when that applier's
                                          connection ends, a crash included, so this is
                                          a second applier, not a stale lock)
====  ==================================  ==============================================  ==========

A death by signal (SIGKILL, SIGSEGV) is restarted like 1.
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


class Unreachable(ConnectError):
    """The server does not answer (down, restarting, network): worth retrying."""


class BinlogPurgedError(SourceError):
    """The position to resume from is no longer on the source."""


class TargetError(ApplierError):
    """The target refused a statement; the transaction was rolled back. ``code``: the
    server's error number, when a server error was the cause (0 otherwise)."""

    exit_code = 5
    code = 0


class TargetLost(TargetError):
    """The connection to the target broke (restart, network, killed): nothing of the open
    transaction committed, or it committed with its checkpoint; ``applier run`` resumes
    from the checkpoint, after reconnecting when it can. Exit 4, like an unreachable
    server: a restart is safe."""

    exit_code = 4


class SchemaError(TargetError):
    """A table seen in the binlog is missing or different on the target."""


class DecodeError(ApplierError):
    """A binlog event could not be decoded."""

    exit_code = 6


class MissingTableMap(DecodeError):
    """A rows event whose TableMap is not in its transaction: what came before it in the
    stream is missing (the reader lost the transaction's start)."""


class WorkerDied(ApplierError):
    """A worker process exited unexpectedly; the checkpoint makes the run restartable."""

    exit_code = 7


class Busy(ApplierError):
    """Another applier holds the checkpoint schema on the target."""

    exit_code = 9


class Divergence(ApplierError):
    """``applier check`` found a difference between source and target."""

    exit_code = 8
