"""What a worker reports when it stops (``worker._failed``): a lost target connection,
from whichever of its connections, is ``TargetLost`` (the coordinator reconnects and
resumes from the checkpoint); anything else unexpected is ``WorkerDied``."""

from __future__ import annotations

import MySQLdb

from applier.errors import TargetError, TargetLost, WorkerDied
from applier.pipeline.worker import _failed


def test_a_lost_connection_is_target_lost():
    for code in (2006, 2013, 4031):  # gone, lost, MySQL's "disconnected for inactivity"
        msg = _failed(2, MySQLdb.OperationalError(code, "Server has gone away"))
        assert msg.worker == 1
        assert isinstance(msg.error, TargetLost), code
        assert "worker 2" in str(msg.error) and str(code) in str(msg.error)


def test_other_errors_keep_their_family():
    assert isinstance(_failed(1, MySQLdb.OperationalError(1045, "denied")).error, WorkerDied)
    assert isinstance(_failed(1, TypeError("x")).error, WorkerDied)
    refused = TargetError("refused")
    assert _failed(1, refused).error is refused
