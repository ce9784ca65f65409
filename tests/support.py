"""Helpers shared by several test modules (their fixtures are in conftest.py and browser.py)."""

import re
from collections.abc import Mapping

from werkzeug.wrappers import Request

from portal.blueprints.webhooks import FORM_TYPES
from portal.payments.base import PaymentEvent, PaymentProvider
from tests.conftest import Recorded


# -- owner forms --------------------------------------------------------------------------------


def expected_statuses(data: dict) -> tuple[int, ...]:
    """Saved, or a form error; a NUL character (no keyboard types one) is refused outright."""
    texts = [t for v in data.values() for t in (v if isinstance(v, list) else [v])]
    return (302, 422, 400) if any("\x00" in t for t in texts) else (302, 422)


# -- payment notifications ----------------------------------------------------------------------


def deliver(adapter: PaymentProvider, hook: Recorded, *, body: bytes | None = None,
            headers: Mapping[str, str] | None = None) -> PaymentEvent:
    """Hand a received notification to the adapter as portal/blueprints/webhooks.py does."""
    sent = {k: v for k, v in (hook.headers if headers is None else headers).items() if k.lower() != "content-length"}
    request = Request.from_values(method=hook.method, data=hook.body if body is None else body, headers=sent)
    raw = request.get_data(cache=True)
    form = request.form if request.mimetype in FORM_TYPES else None
    return adapter.parse_notification(raw, request.headers, form)


# -- the setup kit's RouterOS script ------------------------------------------------------------


def read_literal(literal: str) -> str:
    """What RouterOS makes of a string literal written by `script_string` (the escapes it uses)."""
    assert literal[0] == literal[-1] == '"'
    body, out, i = literal[1:-1], bytearray(), 0
    while i < len(body):
        char = body[i]
        assert char not in '"$?', f"unescaped {char!r} in {literal!r}"
        if char != "\\":
            out += char.encode()
            i += 1
        elif body[i + 1] in '\\"$?':
            out += body[i + 1].encode()
            i += 2
        else:
            assert re.fullmatch(r"[0-9A-F]{2}", body[i + 1:i + 3]), literal
            out.append(int(body[i + 1:i + 3], 16))
            i += 3
    return out.decode()


def script_password(page: str) -> str:
    """The password the kit's script gives the router's `kiosque` user."""
    return re.search(r'/user set \[find name="kiosque"\] group="kiosque" password="([A-Za-z0-9]+)"', page).group(1)
