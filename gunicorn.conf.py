"""Gunicorn settings for Kiosque: `gunicorn -c gunicorn.conf.py wsgi:app`, run from the project folder.

Environment: `WEB_CONCURRENCY` (worker processes; default two per core, at most 8),
`GUNICORN_THREADS` (threads per worker, default 8), `PORT` (default 8000, always on 127.0.0.1:
nginx on the same host is the only client; `--bind` on the command line overrides it),
`FORWARDED_ALLOW_IPS` (proxies trusted to say the request came over HTTPS, default the loopback),
`PORTAL_LOG_FORMAT` and `PORTAL_LOG_LEVEL` (as for the app).

Access log, on standard output: client address, time, method, path, status, size, duration,
user agent. Never a query string (buyers' MAC and IP addresses, payment references, and the
provider keys that old buy links carry), never the referrer (it holds the same query strings),
and the keys paths carry masked: webhook paths as `/webhooks/fedapay/***` (the token
authenticates the provider's callbacks; tell webhooks apart by provider and time), order pages as
`/o/***` and `/o/***/status` (the code opens the order and its ticket), password reset links as
`/owner/password/reset/***`, hotspot page links as `/p/***/login.html`.
"""

import os
from urllib.parse import quote

from gunicorn import glogging

from portal.logging_setup import JsonFormatter, RedactingFormatter, TextFormatter, formatter, redact

MAX_WORKERS = 8  # each worker keeps up to `threads` database connections


def cores() -> int:
    """CPUs this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


wsgi_app = "wsgi:app"
proc_name = "kiosque"
bind = f"127.0.0.1:{int(os.environ.get('PORT') or 8000)}"
# Two processes per core. A paid webhook holds its thread while the provider and the router
# answer, and each answer must win the interpreter lock back from the threads running meanwhile:
# more threads per process make that wait longer, more processes do not. With a provider
# answering in 300 ms, 4 workers x 8 threads made 45-49 tickets/s where 2 x 8 made 35-36 and
# 2 x 16 made 37, adding ~180 ms to each; with providers answering at once, 4 x 8 costs no more
# CPU per ticket than 2 x 8 (docs/benchmarks.md). Two at least, so that one restarting leaves
# another serving.
workers = int(os.environ.get("WEB_CONCURRENCY") or min(2 * cores(), MAX_WORKERS))
# Requests mostly wait on providers (10 s timeout) and routers (5 s): threads let a worker serve
# other requests meanwhile. A paid webhook holds its thread for the provider's answer and two
# router round trips, so threads x workers bounds webhooks/s x the seconds each takes.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS") or 8)
# The longest request: a webhook that checks the payment (10 s) and makes the ticket on the router
# (connect, add, active login: 5 s each at worst); the sale email is the worker's.
timeout = 60  # a worker silent this long is restarted
graceful_timeout = 60  # on restart or stop, requests in progress get this long to finish
keepalive = 5

# nginx on the same host sets X-Forwarded-Proto; only it is believed, and only that header.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
secure_scheme_headers = {"X-FORWARDED-PROTO": "https"}

# Gunicorn's control socket lives at one path per user: two instances would fight over it.
control_socket_disable = True

loglevel = str(os.environ.get("PORTAL_LOG_LEVEL") or "info").lower()
errorlog = "-"
accesslog = "-"
access_log_format = '%(h)s %({x-forwarded-for}i)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms "%(a)s"'
# Fail at start, not at the first log line, on a bad PORTAL_LOG_FORMAT.
formatter(os.environ.get("PORTAL_LOG_FORMAT", "text"))

# Request headers an access log format may use; any other header could carry a secret.
LOGGED_HEADERS = ("{x-forwarded-for}i", "{user-agent}i", "{x-request-id}i")
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def loggable_path(environ) -> str:
    """The request path with the keys it carries masked (see `redact`), percent-encoded to fit one line."""
    return quote(redact(environ.get("PATH_INFO") or "/"), safe=_PATH_SAFE, encoding="latin-1", errors="replace")


class Logger(glogging.Logger):
    """Gunicorn's logger with Kiosque's formats and without secrets."""

    def setup(self, cfg):
        super().setup(cfg)
        json_lines = isinstance(formatter(os.environ.get("PORTAL_LOG_FORMAT", "text")), JsonFormatter)
        for log, plain in ((self.error_log, TextFormatter()), (self.access_log, RedactingFormatter("%(message)s"))):
            for handler in log.handlers:
                if getattr(handler, "_gunicorn", False):
                    handler.setFormatter(JsonFormatter() if json_lines else plain)

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        path = loggable_path(environ)
        kept = {k: v for k, v in atoms.items() if len(k) == 1 or k in LOGGED_HEADERS}
        kept.update(r=f"{environ['REQUEST_METHOD']} {path} {environ['SERVER_PROTOCOL']}", U=path)
        for name in ("q", "f"):  # query string, referrer
            kept.pop(name, None)
        return kept

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        fields = {"remote_addr": atoms["h"], "forwarded_for": atoms.get("{x-forwarded-for}i", ""),
                  "method": atoms["m"], "path": atoms["U"], "status": str(atoms["s"]),
                  "bytes": atoms["B"], "duration_ms": atoms["M"], "user_agent": atoms["a"]}
        try:
            self.access_log.info(self.cfg.access_log_format, self.atoms_wrapper_class(atoms), extra=fields)
        except Exception:
            self.exception("Access log line failed")


logger_class = Logger
