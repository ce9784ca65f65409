"""Production entry points: wsgi.py, gunicorn.conf.py, logging; and a real gunicorn serving /health."""

import importlib
import json
import logging
import os
import runpy
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from gunicorn.config import Config

from portal import logging_setup
from portal.config import ConfigurationError

ROOT = Path(__file__).resolve().parent.parent
GUNICORN_CONF = str(ROOT / "gunicorn.conf.py")
TOKEN = "Wh0k-t0ken_SECRET"
ORDER_CODE = "K7PQ2XM9TB"  # an order code: it opens the order page and its ticket


def production_env(tmp_path) -> dict:
    """The environment of a production start: only the two secrets and the database are set."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PORTAL_", "GUNICORN_")) and k not in ("WEB_CONCURRENCY", "PORT", "FORWARDED_ALLOW_IPS")}
    env.update(PORTAL_SECRET_KEY="s3cret-for-tests", PORTAL_ENCRYPTION_KEY=Fernet.generate_key().decode(),
               PORTAL_SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'kiosque.db'}")
    return env


@pytest.fixture
def environ(monkeypatch, tmp_path) -> dict:
    """os.environ as production_env() has it, restored afterwards."""
    env = production_env(tmp_path)
    for key in set(os.environ) - set(env):
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def root_logger():
    """The root logger, restored to its handlers and level afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    root.handlers[:] = handlers
    root.setLevel(level)


# -- wsgi.py ----------------------------------------------------------------------------------------


def test_wsgi_app_builds_in_production_from_the_environment(environ, root_logger):
    saved = sys.modules.pop("wsgi", None)
    importlib.invalidate_caches()
    try:
        module = importlib.import_module("wsgi")
        app = module.app
        assert isinstance(app, Flask)
        assert app.config["ENV"] == "production" and app.config["SESSION_COOKIE_SECURE"] is True
        assert app.config["SECRET_KEY"] == environ["PORTAL_SECRET_KEY"]
        assert app.config["SQLALCHEMY_DATABASE_URI"] == environ["PORTAL_SQLALCHEMY_DATABASE_URI"]
    finally:
        sys.modules.pop("wsgi", None)
        if saved is not None:
            sys.modules["wsgi"] = saved


# -- gunicorn.conf.py -------------------------------------------------------------------------------


def load_gunicorn_conf(monkeypatch, cores: int) -> dict:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    return runpy.run_path(GUNICORN_CONF)


@pytest.mark.parametrize(("cores", "workers"), [(1, 2), (2, 4), (3, 6), (16, 8)])
def test_gunicorn_runs_two_workers_per_core_up_to_a_cap(environ, monkeypatch, cores, workers):
    conf = load_gunicorn_conf(monkeypatch, cores)
    assert conf["workers"] == workers
    assert conf["bind"] == "127.0.0.1:8000"


def test_gunicorn_honours_web_concurrency_and_port(environ, monkeypatch):
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("PORT", "9123")
    conf = load_gunicorn_conf(monkeypatch, 16)
    assert conf["workers"] == 3
    assert conf["bind"] == "127.0.0.1:9123"


def test_gunicorn_accepts_every_setting(environ, monkeypatch):
    """Each setting the file defines passes gunicorn's own validation."""
    conf = load_gunicorn_conf(monkeypatch, 2)
    config = Config()
    applied = [name for name in conf if name in config.settings]
    for name in applied:
        config.set(name, conf[name])
    assert {"bind", "workers", "threads", "timeout", "graceful_timeout", "forwarded_allow_ips",
            "accesslog", "access_log_format", "logger_class"} <= set(applied)
    assert config.worker_class_str == "gthread" and config.threads == 8
    # Long enough for a provider check (10 s) and a ticket on the router (5 s per call).
    assert config.timeout >= 30 and config.graceful_timeout >= 30
    assert config.forwarded_allow_ips == ["127.0.0.1", "::1"]
    assert config.logger_class is conf["Logger"]


def test_gunicorn_refuses_an_unknown_log_format(environ, monkeypatch):
    monkeypatch.setenv("PORTAL_LOG_FORMAT", "xml")
    with pytest.raises(ConfigurationError, match="PORTAL_LOG_FORMAT"):
        load_gunicorn_conf(monkeypatch, 2)


def test_access_log_masks_webhook_tokens_and_drops_query_strings_and_referrers(environ, monkeypatch, capsys, request):
    conf = load_gunicorn_conf(monkeypatch, 2)
    config = Config()
    for name in ("accesslog", "access_log_format", "errorlog"):
        config.set(name, conf[name])
    logger = conf["Logger"](config)
    request.addfinalizer(lambda: [log.handlers.clear() for log in (logger.error_log, logger.access_log)])

    class Response:
        status, sent, headers = "404 NOT FOUND", 0, [("Location", f"/webhooks/fedapay/{TOKEN}")]

    wsgi_environ = {"REQUEST_METHOD": "POST", "RAW_URI": f"/webhooks/fedapay/{TOKEN}?amount=1&api_key=k3y",
                "PATH_INFO": f"/webhooks/fedapay/{TOKEN}", "QUERY_STRING": "amount=1&api_key=k3y",
                "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
                "HTTP_REFERER": "http://wifi.net/login?password=p4ss", "HTTP_USER_AGENT": "FedaPay"}
    http_request = type("Request", (), {"headers": [("X-FORWARDED-FOR", "41.0.0.7"), ("REFERER", "http://x/?p=p4ss")]})
    logger.access(Response(), http_request(), wsgi_environ, timedelta(milliseconds=12))
    line = capsys.readouterr().out
    assert '41.0.0.7' in line and '"POST /webhooks/fedapay/*** HTTP/1.1" 404' in line and '"FedaPay"' in line
    for secret in (TOKEN, "api_key", "k3y", "p4ss"):
        assert secret not in line


# -- portal/logging_setup.py ------------------------------------------------------------------------


def log_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line]


def test_json_logs_are_one_object_per_line_with_extra_fields(root_logger, capsys):
    app = Flask(__name__)
    app.config["LOG_FORMAT"] = "json"
    logging_setup.configure(app)
    logging_setup.configure(app)  # idempotent: still one handler
    assert len([h for h in root_logger.handlers if getattr(h, "_kiosque", False)]) == 1

    log = logging.getLogger("portal.services.order_state")
    log.info("order %s: paid", "K7Q2M9XW4P", extra={"order": "K7Q2M9XW4P", "amount": 500, "level": "x"})
    try:
        raise RuntimeError(f"callback on /webhooks/fedapay/{TOKEN} failed")
    except RuntimeError:
        log.exception("Exception on /webhooks/fedapay/%s [POST]", TOKEN)
    app.logger.warning("from the app logger")

    lines = log_lines(capsys)
    assert len(lines) == 3, lines
    first, second, third = (json.loads(line) for line in lines)
    assert first["level"] == "INFO" and first["logger"] == "portal.services.order_state"
    assert first["message"] == "order K7Q2M9XW4P: paid"
    assert first["order"] == "K7Q2M9XW4P" and first["amount"] == 500 and first["extra_level"] == "x"
    assert first["time"].endswith("+00:00")
    assert second["level"] == "ERROR" and "RuntimeError" in second["exception"]
    assert second["message"] == "Exception on /webhooks/fedapay/*** [POST]"
    assert third["logger"] == app.name and third["message"] == "from the app logger"
    assert TOKEN not in "".join(lines)


def test_text_logs_by_default_and_reconfiguring_replaces_the_handler(root_logger, capsys):
    app = Flask(__name__)
    app.config["LOG_FORMAT"] = "json"
    logging_setup.configure(app)
    del app.config["LOG_FORMAT"]
    logging_setup.configure(app)
    logging.getLogger("portal.test").info("hello", extra={"router": 4})
    [line] = log_lines(capsys)
    assert line.endswith(" INFO portal.test: hello router=4")


def test_log_level_filters_kiosque_output_without_narrowing_the_root_logger(root_logger, capsys):
    app = Flask(__name__)
    root_logger.setLevel(logging.WARNING)
    logging_setup.configure(app)
    assert root_logger.level == logging.INFO  # opened so INFO records exist at all
    root_logger.setLevel(logging.DEBUG)  # someone else wants more
    app.config["LOG_LEVEL"] = "WARNING"
    logging_setup.configure(app)
    assert root_logger.level == logging.DEBUG
    log = logging.getLogger("portal.test")
    log.info("not shown")
    log.warning("shown")
    [line] = log_lines(capsys)
    assert line.endswith("WARNING portal.test: shown")


def test_unknown_log_format_is_refused(root_logger):
    app = Flask(__name__)
    app.config["LOG_FORMAT"] = "xml"
    with pytest.raises(ConfigurationError, match="PORTAL_LOG_FORMAT"):
        logging_setup.configure(app)


@pytest.mark.parametrize("text", [
    f"POST /webhooks/fedapay/{TOKEN} HTTP/1.1",
    f"/webhooks/cinetpay/{TOKEN}?cpm_trans_id=1",
    f"/WEBHOOKS//feexpay//{TOKEN}",
    f"/webhooks%2Ffedapay%2F{TOKEN}",
    f"https://kiosque.example/webhooks/fedapay/{TOKEN}/extra",
])
def test_redact_masks_webhook_tokens_in_any_spelling(text):
    assert TOKEN not in logging_setup.redact(text) and "***" in logging_setup.redact(text)


@pytest.mark.parametrize("text", [
    f"GET /o/{ORDER_CODE} HTTP/1.1",
    f"/o/{ORDER_CODE}/status",
    f"POST /o/{ORDER_CODE}?id=1002",
    f"https://kiosque.example/o/{ORDER_CODE.lower()}",
    f"/O//{ORDER_CODE}",
    f"/o%2F{ORDER_CODE}",
    f"Exception on /o/{ORDER_CODE}/status [GET]",
    f"/owner/password/reset/{TOKEN}",
    f"https://kiosque.example/owner/password%2Freset/{TOKEN}",
    f"GET /p/{TOKEN}/login.html HTTP/1.1",
    f"https://kiosque.example/P//{TOKEN}/errors.txt",
])
def test_redact_masks_order_codes_reset_tokens_and_page_links(text):
    redacted = logging_setup.redact(text)
    assert ORDER_CODE not in redacted.upper() and TOKEN not in redacted and "***" in redacted


@pytest.mark.parametrize("text", ["GET /owner/orders/12 HTTP/1.1", "/owner/", "/r/x7Yq/buy", "I/O error", "/static/kiosque.css"])
def test_redact_leaves_other_paths(text):
    assert logging_setup.redact(text) == text


# -- a real gunicorn --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, method: str = "GET"):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method, data=b"" if method == "POST" else None),
                                    timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_gunicorn_serves_health_and_logs_no_webhook_token(tmp_path):
    env = production_env(tmp_path)
    port = free_port()
    env.update(PORT=str(port), WEB_CONCURRENCY="1", GUNICORN_THREADS="2")
    subprocess.run([sys.executable, "-m", "flask", "--app", "portal", "db", "upgrade"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=60)
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                                  cwd=ROOT, env=env, stdout=stdout, stderr=stderr, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, f"gunicorn exited: {err.read_text()}"
            try:
                status, body = get(f"{base}/health")
                break
            except OSError:  # not listening yet
                assert time.monotonic() < deadline, f"gunicorn did not answer: {err.read_text()}"
                time.sleep(0.2)
        assert status == 200 and json.loads(body) == {"status": "ok"}
        assert get(f"{base}/webhooks/fedapay/{TOKEN}?amount=100", "POST")[0] == 404
        assert get(f"{base}/o/{ORDER_CODE}")[0] == 404
        assert get(f"{base}/o/{ORDER_CODE}/status")[0] == 404
        assert get(f"{base}/owner/password/reset/{TOKEN}")[0] == 400
        assert get(f"{base}/p/{TOKEN}/login.html")[0] == 404
    finally:
        if server.poll() is None:
            server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=5)
    access = out.read_text()
    assert '"GET /health HTTP/1.1" 200' in access
    assert '"POST /webhooks/fedapay/*** HTTP/1.1" 404' in access
    assert '"GET /o/*** HTTP/1.1" 404' in access and '"GET /o/***/status HTTP/1.1" 404' in access
    assert '"GET /owner/password/reset/*** HTTP/1.1" 400' in access
    assert '"GET /p/***/login.html HTTP/1.1" 404' in access
    logs = access + err.read_text()
    assert TOKEN not in logs and "amount=100" not in logs and ORDER_CODE not in logs
