"""Kiosque served on a loopback port with the demo's sandbox router and providers, for the benchmarks."""

import hashlib
import hmac
import logging
import sys
import time
from collections.abc import Callable
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from cryptography.fernet import Fernet  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from portal import create_app  # noqa: E402
from portal.extensions import db  # noqa: E402
from sandbox import ROUTER_EGRESS, demo  # noqa: E402

FEDAPAY_SECRET = demo.CREDENTIALS["fedapay"]["webhook_secret"]


@contextmanager
def staged_kiosque(database_uri: str | None = None):
    """Yield (app, base_url, stage) with the app serving on a free port; a fresh SQLite file by default."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request drowns the figures
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app({
            "ENV": "bench", "SECRET_KEY": "bench", "ENCRYPTION_KEY": Fernet.generate_key().decode(),
            "SQLALCHEMY_DATABASE_URI": database_uri or f"sqlite:///{tmp}/bench.db",
            "MAIL_SUPPRESS_SEND": True, "RATELIMIT_ENABLED": False, "LOG_LEVEL": "WARNING", **ROUTER_EGRESS,
        })
        server = make_server("127.0.0.1", 0, app, threaded=True)
        base = f"http://127.0.0.1:{server.server_port}"
        with app.app_context():
            db.drop_all()  # a database given is the benchmark's own
            db.create_all()
            stage = demo.stage(app, base)
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            try:
                yield app, base, stage
            finally:
                server.shutdown()
                stage.router_server.stop()
                db.session.remove()
                db.drop_all()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def fedapay_headers(body: bytes) -> dict[str, str]:
    """FedaPay's webhook headers for the demo's account: `t=<unix seconds>,s=<hex HMAC-SHA256 of "t.body">`."""
    timestamp = str(int(time.time()))
    signature = hmac.new(FEDAPAY_SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-FEDAPAY-SIGNATURE": f"t={timestamp},s={signature}",
            "User-Agent": "bench-notifier"}


def compare_cpu(ways: dict[str, Callable[[], object]], runs: int, rounds: int, what: str) -> None:
    """Print a table of what one call of each way costs the calling thread, in CPU ms.

    The ways are interleaved, round by round, so that a busy machine slows them alike; each figure
    is the range over the rounds. Each round starts with a few untimed calls, to warm caches and
    connection pools.
    """
    figures: dict[str, list[float]] = {name: [] for name in ways}
    for _round in range(rounds):
        for name, way in ways.items():
            for _ in range(runs // 20):
                way()
            start = time.thread_time()
            for _ in range(runs):
                way()
            figures[name].append((time.thread_time() - start) / runs * 1000)
    print(f"| {what} | CPU ms (range over {rounds} rounds of {runs}) |\n|---|---|")
    for name, values in figures.items():
        print(f"| {name} | {min(values):.2f}–{max(values):.2f} |")
