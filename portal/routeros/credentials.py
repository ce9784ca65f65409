"""Hotspot usernames, passwords and comments shaped like the ones Mikhmon generates.

Mikhmon tells a voucher (``vc``: password = username) from a username/password pair (``up``)
only by comparing the two, and starts its expiry script only for comments beginning with ``vc``
or ``up``; following its rules keeps our tickets listed, printable and expiring in Mikhmon.
Unlike Mikhmon (PHP ``rand()``), every character is drawn with :mod:`secrets`.
"""

import datetime
import re
import secrets
from dataclasses import dataclass, field

DIGITS = "23456789"
# Mikhmon's alphabets: no look-alikes (0/O/Q, 1/l/I), so codes survive being read aloud or copied.
_LOWER = "abcdefghijkmnprstuvwxyz"
_UPPER = "ABCDEFGHJKLMNPRSTUVWXYZ"
CHARSETS: dict[str, str] = {
    "lower": _LOWER,
    "upper": _UPPER,
    "upplow": _UPPER + _LOWER,
    "mix": DIGITS + _LOWER,
    "mix1": DIGITS + _UPPER,
    "mix2": DIGITS + _UPPER + _LOWER,
    "num": DIGITS,
}
MODES = ("vc", "up")
MIN_LENGTH, MAX_LENGTH = 3, 8
MAX_PREFIX = 6
MAX_ORDER_CODE = 32
# Trailing digits of a vc name made of letters, by length (Mikhmon's table).
_VC_DIGITS = {3: 1, 4: 2, 5: 2, 6: 3, 7: 3, 8: 4}
_LETTER_CHARSETS = ("lower", "upper", "upplow")

_ALNUM = re.compile(r"[A-Za-z0-9]*")
# vc-NNN-mm.dd.yy-<anything>: what Mikhmon's batch generator writes and its comment filter lists.
_BATCH_COMMENT = re.compile(
    r"(?:vc|up)-[1-9][0-9]{2}-(?:0[1-9]|1[0-2])\.(?:0[1-9]|[12][0-9]|3[01])\.[0-9]{2}-.*"
)


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


def generate(mode: str, length: int, charset: str, prefix: str = "") -> Credentials:
    """Draw one username/password pair following Mikhmon's rules for ``mode``.

    ``length`` counts the random part only, not the prefix. In ``up`` mode the password is
    ``length`` digits; in ``vc`` mode it equals the username.
    """
    _check_settings(mode, length, charset, prefix)
    return _draw(mode, length, charset, prefix)


def sample(
    mode: str, length: int, charset: str, prefix: str = "", n: int = 3
) -> list[Credentials]:
    """Draw ``n`` pairs, to show an owner what their settings produce."""
    _check_settings(mode, length, charset, prefix)
    return [_draw(mode, length, charset, prefix) for _ in range(n)]


def name_space(mode: str, length: int, charset: str) -> int:
    """How many different usernames these settings can draw (the prefix adds none)."""
    _check_settings(mode, length, charset, "")
    alphabet = len(CHARSETS[charset])
    if mode == "vc" and charset in _LETTER_CHARSETS:
        digits = _VC_DIGITS[length]
        return alphabet ** (length - digits) * len(DIGITS) ** digits
    return alphabet ** length


def comment(mode: str, order_code: str, today: datetime.date) -> str:
    """Return a Mikhmon batch comment, ``vc-NNN-mm.dd.yy-<order_code>``.

    Mikhmon lists it in its comment filter and its on-login script sets the expiry. Only
    letters, digits, ``-`` and ``.`` appear, because Mikhmon puts comments unescaped in URLs.
    """
    _check_mode(mode)
    if not order_code or len(order_code) > MAX_ORDER_CODE or not _ALNUM.fullmatch(order_code):
        raise ValueError(f"order code must be 1 to {MAX_ORDER_CODE} letters or digits")
    batch = 100 + secrets.randbelow(900)
    return f"{mode}-{batch}-{today:%m.%d.%y}-{order_code}"


def is_mikhmon_comment(text: str) -> bool:
    """Tell whether ``text`` has the shape of a Mikhmon batch comment (``vc-123-06.15.24-…``)."""
    return _BATCH_COMMENT.fullmatch(text) is not None


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")


def _check_settings(mode: str, length: int, charset: str, prefix: str) -> None:
    _check_mode(mode)
    if not MIN_LENGTH <= length <= MAX_LENGTH:
        raise ValueError(f"length must be between {MIN_LENGTH} and {MAX_LENGTH}")
    if charset not in CHARSETS:
        raise ValueError(f"character set must be one of {', '.join(CHARSETS)}")
    if charset == "num" and mode != "vc":
        raise ValueError("the num character set is only for vc mode")
    # Letters and digits only: the prefix ends up in login URLs and RouterOS scripts.
    if len(prefix) > MAX_PREFIX or not _ALNUM.fullmatch(prefix):
        raise ValueError(f"prefix must be at most {MAX_PREFIX} letters or digits")


def _draw(mode: str, length: int, charset: str, prefix: str) -> Credentials:
    if mode == "vc":
        name = prefix + _vc_body(length, charset)
        return Credentials(name, name)
    name = prefix + _random(CHARSETS[charset], length)
    while True:
        password = _random(DIGITS, length)
        # Mikhmon would take an up user whose password equals the name for a voucher.
        if password != name:
            return Credentials(name, password)


def _vc_body(length: int, charset: str) -> str:
    if charset in _LETTER_CHARSETS:
        digits = _VC_DIGITS[length]
        return _random(CHARSETS[charset], length - digits) + _random(DIGITS, digits)
    return _random(CHARSETS[charset], length)


def _random(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))
