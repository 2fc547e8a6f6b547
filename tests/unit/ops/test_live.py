"""`applier status`'s live figures (ops/live.py) against a real HTTP endpoint on
loopback serving the exporter's text format: the rate between two scrapes, per-worker
queues in worker order, and a clear line when nothing answers."""

from __future__ import annotations

import http.server
import socket
import threading

from applier.ops.live import Live, parse, read_live

PAGE = """# TYPE applier_transactions counter
applier_transactions_total {n}
# TYPE applier_lag_seconds gauge
applier_lag_seconds 1.5
# TYPE applier_worker_in_flight gauge
applier_worker_in_flight{{worker="10"}} 7.0
applier_worker_in_flight{{worker="2"}} 3.0
applier_worker_in_flight{{worker="1"}} 0.0
# TYPE applier_waiting_transactions gauge
applier_waiting_transactions 4.0
"""


def serve(pages: list[str]):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            body = pages.pop(0).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_two_scrapes_give_the_rate_and_queues_in_worker_order():
    server = serve([PAGE.format(n=100), PAGE.format(n=160)])
    try:
        live = read_live(f"127.0.0.1:{server.server_port}", interval=0.5)
    finally:
        server.shutdown()
    assert not live.error
    assert 60 < live.rate <= 120  # 60 transactions in ≥ 0.5 s
    assert live.in_flight == (0, 3, 7) and live.waiting == 4 and live.lag_seconds == 1.5
    assert live.transactions == 160
    line = live.line()
    assert "transactions/s" in line and "in flight per worker 0,3,7" in line and "waiting 4" in line


def test_nothing_listening_is_a_line_not_an_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        live = read_live(f"127.0.0.1:{port}", interval=0)
    assert live.error.startswith("no answer") and live.rate is None
    assert live.line().startswith(f"live (127.0.0.1:{port}):  no answer")


def test_parse_keeps_labels():
    m = parse(PAGE.format(n=5))
    assert m["applier_transactions_total"] == 5
    assert m['applier_worker_in_flight{worker="2"}'] == 3
    assert Live("x:1").line() == "live (x:1):  rate unknown"
