"""Logging: one handler on the root logger, plain text or one JSON object per line, no secrets.

`configure(app)` reads `LOG_FORMAT` (`text`, the default, or `json`) and `LOG_LEVEL` (default
`INFO`) and may run any number of times: each run replaces the handler the previous one added.
Records go to standard error, for journald or the container runtime to keep.
gunicorn.conf.py formats gunicorn's own logs with the same formatters.

Whatever the format, the keys that URLs carry are replaced by `***` in every line, message,
traceback and extra field alike: a webhook URL's token (`/webhooks/<provider>/<token>`: it
authenticates the provider's callbacks), an order's code (`/o/<code>`: it opens the order page and
its ticket), a password reset link's token (`/password/reset/<token>`) and a router's hotspot page
link (`/p/<token>/<file>`: it serves that router's pages for an hour).
"""

import json
import logging
import re
import sys
from datetime import datetime, timezone

from flask import Flask
from flask.logging import default_handler

from portal.config import ConfigurationError

FORMATS = ("text", "json")
# `/webhooks/<provider>/<token>`, also with encoded (%2F) or doubled slashes, in any case.
_SLASH = r"(?:/|%2[fF])"
_STOP = r"/\s\"'?#&<>\\"
WEBHOOK_TOKEN = re.compile(rf"({_SLASH}webhooks{_SLASH}+[^{_STOP}]*?{_SLASH}+)[^{_STOP}]+", re.IGNORECASE)
# `/o/<code>` (and `/o/<code>/status`), `/password/reset/<token>`, spelled the same ways.
ORDER_CODE = re.compile(rf"({_SLASH}o{_SLASH}+)[^{_STOP}]+", re.IGNORECASE)
RESET_TOKEN = re.compile(rf"({_SLASH}password{_SLASH}+reset{_SLASH}+)[^{_STOP}]+", re.IGNORECASE)
# `/p/<token>/<file>`, a router's one-time hotspot page link.
PAGES_LINK = re.compile(rf"({_SLASH}p{_SLASH}+)[^{_STOP}]+", re.IGNORECASE)
SECRET_PATHS = (WEBHOOK_TOKEN, ORDER_CODE, RESET_TOKEN, PAGES_LINK)
# Attributes every LogRecord has: whatever else a record carries came from `extra=`.
_RECORD_FIELDS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def redact(text: str) -> str:
    """The text with every webhook token, order code, reset token and page link in a URL masked."""
    for pattern in SECRET_PATHS:
        text = pattern.sub(r"\1***", text)
    return text


def extras(record: logging.LogRecord) -> dict:
    """The fields a log call passed with `extra=`."""
    return {k: v for k, v in record.__dict__.items() if k not in _RECORD_FIELDS and not k.startswith("_")}


def _utc(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds")


class RedactingFormatter(logging.Formatter):
    """A standard formatter whose output never carries a key from a URL (see `redact`)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class TextFormatter(RedactingFormatter):
    """`2026-11-28T10:00:00.123+00:00 INFO portal.services.orders: message key=value`."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record, datefmt=None) -> str:
        return _utc(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = "".join(f" {k}={v!r}" if isinstance(v, str) and (" " in v or not v) else f" {k}={v}"
                         for k, v in extras(record).items())
        return super().formatMessage(record) + fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the `extra=` fields, and exception."""

    CORE = ("time", "level", "logger", "message")

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": _utc(record), "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        for key, value in extras(record).items():
            entry[f"extra_{key}" if key in self.CORE else key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(_redact_values(entry), ensure_ascii=False, default=str)


def _redact_values(value):
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_values(v) for v in value]
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    return redact(str(value))


def formatter(name: str) -> logging.Formatter:
    """The formatter for a `LOG_FORMAT` value."""
    name = str(name or "text").strip().lower()
    if name not in FORMATS:
        raise ConfigurationError(f"PORTAL_LOG_FORMAT must be one of {', '.join(FORMATS)}, not {name!r}.")
    return JsonFormatter() if name == "json" else TextFormatter()


def level(value) -> int:
    """A `LOG_LEVEL` value (a name such as `INFO`, or a number) as a logging level."""
    if isinstance(value, int):
        return value
    number = logging.getLevelName(str(value or "INFO").strip().upper())
    if not isinstance(number, int):
        raise ConfigurationError(f"PORTAL_LOG_LEVEL must be a level name such as INFO, not {value!r}.")
    return number


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of each record."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def configure(app: Flask) -> None:
    """Send log records of `LOG_LEVEL` and above to standard error in `LOG_FORMAT`; idempotent.

    The root logger is opened down to `LOG_LEVEL` but never closed further: a handler someone
    else added for more detail (a test collecting DEBUG records) keeps receiving them.
    """
    threshold = level(app.config.get("LOG_LEVEL", "INFO"))
    handler = _StderrHandler()
    handler.setFormatter(formatter(app.config.get("LOG_FORMAT", "text")))
    handler.setLevel(threshold)
    handler._kiosque = True
    root = logging.getLogger()
    for previous in [h for h in root.handlers if getattr(h, "_kiosque", False)]:
        root.removeHandler(previous)
    root.addHandler(handler)
    if root.level > threshold:  # NOTSET (0) on the root already lets everything through
        root.setLevel(threshold)
    # Flask's own handler would print the app's records a second time.
    app.logger.removeHandler(default_handler)
