"""A RouterOS API server for the tests and the demo.

It speaks the real wire protocol over TCP (optionally TLS, like api-ssl) and keeps a small
hotspot in memory: users, user profiles with Mikhmon on-login headers, servers, server
profiles, hosts, active sessions, scripts and walled-garden entries. Field names, reply shapes
and error texts follow docs/routeros.md (#what-the-sandbox-router-must-reproduce), so
code that works against it should work against a router. Fault knobs (latency, hang, drop,
refuse, RouterOS 7.18 ``!empty``) let tests exercise timeouts and reconnects.

Run alone: ``python -m sandbox.routeros --port 8728 --user admin --password PASS``.
"""

from __future__ import annotations

import argparse
import re
import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

# Every text the sandbox sends back in a !trap or !fatal, in one place. The first group was seen
# on real routers (docs/routeros.md#error-texts). The active/login texts are the hotspot's own
# errors.txt messages; whether /ip/hotspot/active/login returns exactly these is unverified
# (docs/routeros.md#active-login), and so are "no such host", "unknown parameter", "invalid value for argument" and
# "invalid query".
MESSAGES: dict[str, str] = {
    "bad_login": "invalid user name or password (6)",
    "not_logged_in": "not logged in",
    "quit": "session terminated on request",
    "no_such_command_prefix": "no such command prefix",
    "no_such_command": "no such command or directory ({verb})",
    "no_such_item": "no such item",
    "bad_profile": "input does not match any value of profile",
    "bad_server": "input does not match any value of server",
    "bad_action": "input does not match any value of action",
    "duplicate_user": "failure: already have user with this name for this server",
    "missing_name": "failure: name must be set",
    "active_bad_credentials": "invalid username or password",
    "active_no_host": "no such host",
    "active_bad_mac": "user {user} is not allowed to log in from this MAC address",
    "active_session_limit": "no more sessions are allowed for user {user}",
    "unknown_parameter": "unknown parameter {name}",
    "bad_value": "invalid value for argument {name}",
    "bad_query": "invalid query",
}

MODES = ("normal", "hang", "drop", "refuse")
ANY_MAC = "00:00:00:00:00:00"
SESSION_IDLE_TIMEOUT = 600.0  # seconds a client may stay silent before the sandbox hangs up
HANDSHAKE_TIMEOUT = 5.0
ACCEPT_POLL = 0.5  # the accept loop wakes this often to notice stop() and mode changes
MAX_WORD = 64 * 1024 * 1024  # refuse absurd lengths instead of allocating them

# Mikhmon user profiles (docs/routeros.md#on-login-header, #expiry-scheduler): the header, then a body paraphrasing what
# Mikhmon writes (expiry scheduler, optional sale record, optional MAC lock).
_EXPIRY_BODY = (
    '{:local comment [/ip hotspot user get [/ip hotspot user find where name="$user"] comment];'
    " :local ucode [:pick $comment 0 2];"
    ' :if ($ucode = "vc" or $ucode = "up" or $comment = "") do={'
    ' :local date [/system clock get date]; :local time [/system clock get time];'
    ' /system scheduler add name="$user" disable=no start-date=$date interval="@validity@"; :delay 5s;'
    ' :local exp [/system scheduler get [/system scheduler find where name="$user"] next-run];'
    ' /ip hotspot user set comment=$exp [find where name="$user"]; :delay 5s;'
    ' /system scheduler remove [find where name="$user"];@record@}}'
)
_RECORD_BODY = (
    ' :local month [:pick $date 0 3]; :local year [:pick $date 7 11];'
    ' /system script add name="$date-|-$time-|-$user-|-@price@-|-$address-|-$"mac-address"'
    '-|-@validity@-|-@profile@-|-$comment" owner="$month$year" source=$date comment=mikhmon'
)
_LOCK_BODY = ' [:local mac $"mac-address"; /ip hotspot user set mac-address=$mac [find where name=$user]]'


def mikhmon_on_login(
    expmode: str, price: int, validity: str, selling_price: int, lock: bool, profile: str
) -> str:
    """An on-login script shaped like Mikhmon's: the ``:put`` header, then the expiry/record/lock body."""
    lock_word = "Enable" if lock else "Disable"
    if expmode == "0" or not validity:  # Mikhmon's "None": no expiry, only price and lock
        return f':put (",,{price},,,noexp,{lock_word},")' + (_LOCK_BODY if lock else "")
    record = _RECORD_BODY if expmode in ("remc", "ntfc") else ""
    body = _EXPIRY_BODY.replace("@record@", record) + (_LOCK_BODY if lock else "")
    for name, value in (("price", str(price)), ("validity", validity), ("profile", profile)):
        body = body.replace(f"@{name}@", value)
    return f':put (",{expmode},{price},{validity},{selling_price},,{lock_word},"); {body}'


_SEED_PROFILES: tuple[tuple[str, str, int, str, int, bool, str], ...] = (
    # name, expmode, price, validity, selling price, lock, rate-limit
    ("1h", "rem", 200, "1h", 0, False, "512k/1M"),
    ("1d", "rem", 500, "1d", 0, False, "1M/2M"),
    ("1w", "ntfc", 2000, "1w", 2500, True, "2M/4M"),
    ("illimite", "0", 1000, "", 0, False, "1M/2M"),
)


# --- wire format (docs/routeros.md#words-and-length-encoding) ----------------------------------------------------------

class ProtocolError(Exception):
    """The peer sent bytes that are not RouterOS API words."""


def encode_length(length: int) -> bytes:
    """The big-endian length prefix, in the shortest of the five forms."""
    if length < 0x80:
        return length.to_bytes(1, "big")
    if length < 0x4000:
        return (length | 0x8000).to_bytes(2, "big")
    if length < 0x200000:
        return (length | 0xC00000).to_bytes(3, "big")
    if length < 0x10000000:
        return (length | 0xE0000000).to_bytes(4, "big")
    return b"\xf0" + length.to_bytes(4, "big")


def decode_length(first: int, read: Callable[[int], bytes]) -> int:
    """Decode a length prefix whose first byte is ``first``; ``read(n)`` supplies the rest."""
    for below, extra, value_bits in ((0x80, 0, 0x7F), (0xC0, 1, 0x3F), (0xE0, 2, 0x1F), (0xF0, 3, 0x0F)):
        if first < below:
            return int.from_bytes(bytes([first & value_bits]) + read(extra), "big")
    if first == 0xF0:
        return int.from_bytes(read(4), "big")
    raise ProtocolError(f"reserved control byte {first:#04x}")


def encode_sentence(words: Iterable[str]) -> bytes:
    """Words with their length prefixes, then the empty word that ends a sentence."""
    out = bytearray()
    for word in words:
        data = word.encode("utf-8")
        out += encode_length(len(data)) + data
    return bytes(out + b"\x00")


# --- values ------------------------------------------------------------------------------------

_DURATION = re.compile(
    r"(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?"
    r"(?:(?P<hh>\d+):(?P<mm>\d\d):(?P<ss>\d\d)"
    r"|(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?(?:(?P<ms>\d+)ms)?)"
)
_UNITS = (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_INTEGER = re.compile(r"-?\d+")
_MAC = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")
_BOOLEANS = {"yes": "true", "true": "true", "no": "false", "false": "false"}
# Fields holding durations: compared as durations in queries (Mikhmon sends both "0s" and "00:00:00").
_DURATION_FIELDS = frozenset({"uptime", "limit-uptime", "idle-time", "session-time-left"})


def parse_duration(text: str) -> int | None:
    """Seconds in a RouterOS duration (``1d2h``, ``01:00:00``, bare seconds), or None."""
    if text.isdigit():
        return int(text)
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        return None
    parts = {key: int(value) for key, value in match.groupdict().items() if value}
    return (
        parts.get("w", 0) * 604800 + parts.get("d", 0) * 86400
        + (parts.get("hh", 0) + parts.get("h", 0)) * 3600
        + (parts.get("mm", 0) + parts.get("m", 0)) * 60
        + parts.get("ss", 0) + parts.get("s", 0) + parts.get("ms", 0) // 1000
    )


def format_duration(seconds: int) -> str:
    """The compact form RouterOS prints: ``1w2d3h4m5s``, ``0s``."""
    out = ""
    for unit, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            out += f"{count}{unit}"
    return out or "0s"


def _new_clock_format(version: str) -> bool:
    """RouterOS 7.10 changed dates from ``jun/15/2024`` to ``2024-06-15`` (docs/routeros.md#routeros-710-date-format)."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return match is not None and (int(match[1]), int(match[2])) >= (7, 10)


def _format_date(moment: datetime, version: str) -> str:
    if _new_clock_format(version):
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%b/%d/%Y").lower()


@dataclass(frozen=True)
class MikhmonHeader:
    """The fields Mikhmon keeps in the ``:put (",...,")`` line of a profile's on-login."""

    expmode: str
    price: str
    validity: str
    selling_price: str
    lock: bool


def parse_mikhmon_header(on_login: str) -> MikhmonHeader | None:
    match = re.match(r'\s*:put \("(,[^"]*)"\)', on_login)
    if match is None:
        return None
    parts = match[1].split(",") + [""] * 8
    return MikhmonHeader(parts[1], parts[2], parts[3], parts[4], parts[6] == "Enable")


# --- commands ----------------------------------------------------------------------------------

class _Trap(Exception):
    """Answer the command with ``!trap =message=...`` then ``!done``."""


class _Fatal(Exception):
    """Answer with ``!fatal <reason>`` and close the connection."""


@dataclass
class _Command:
    word: str
    attrs: dict[str, str] = field(default_factory=dict)
    queries: list[str] = field(default_factory=list)
    tag: str | None = None

    @classmethod
    def parse(cls, words: list[str]) -> _Command:
        command = cls(words[0])
        for word in words[1:]:
            if word.startswith("="):
                key, _, value = word[1:].partition("=")  # "=k" alone means an empty value
                command.attrs[key] = value
            elif word.startswith("?"):
                command.queries.append(word[1:])
            elif word.startswith(".tag="):
                command.tag = word[5:]
        return command

    @property
    def menu(self) -> str:
        return self.word.rpartition("/")[0]

    @property
    def verb(self) -> str:
        return self.word.rpartition("/")[2]


def _compare(key: str, left: str, right: str) -> int:
    """-1/0/1 comparing two values of one field: as durations, integers, or else as text."""
    if key in _DURATION_FIELDS:
        numbers = parse_duration(left), parse_duration(right)
    else:
        numbers = tuple(int(v) if _INTEGER.fullmatch(v) else None for v in (left, right))
    a, b = numbers if None not in numbers else (left, right)
    return (a > b) - (a < b)


def _query_matches(row: dict[str, str], queries: list[str]) -> bool:
    """Evaluate ``?`` words on the RouterOS query stack; what stays on the stack is AND-ed."""
    stack: list[bool] = []
    for query in queries:
        if query.startswith("#"):
            for op in query[1:]:
                if op in "|&" and len(stack) >= 2:
                    right, left = stack.pop(), stack.pop()
                    stack.append(left or right if op == "|" else left and right)
                elif op == "!" and stack:
                    stack.append(not stack.pop())
                elif op == "." and stack:
                    stack.append(stack[-1])
                elif op.isdigit() and stack:
                    stack.append(stack[min(int(op), len(stack) - 1)])
                else:
                    raise _Trap(MESSAGES["bad_query"])
            continue
        operator = query[0] if query[:1] in ("<", ">", "-", "=") else ""
        key, has_value, value = query[len(operator):].partition("=")
        if operator == "-":
            stack.append(key not in row)
        elif not has_value:
            stack.append(key in row)
        else:
            order = _compare(key, row.get(key, ""), value)
            stack.append({"<": order < 0, ">": order > 0}.get(operator, order == 0))
    return all(stack)


def _arguments(command: _Command) -> dict[str, str]:
    """The command's item fields, without API attributes such as ``.id`` and ``.proplist``."""
    return {key: value for key, value in command.attrs.items() if not key.startswith(".")}


class _Table:
    """One menu's items, with RouterOS-style ids ``*1``, ``*A``...

    ``indexed`` fields are looked up through an index, so that finding a user by name or a host
    by address stays quick with tens of thousands of rows (a load test makes that many).
    """

    def __init__(self, *indexed: str) -> None:
        self._rows: dict[str, dict[str, str]] = {}
        self._next = 1
        self._index: dict[str, dict[str, dict[str, None]]] = {name: {} for name in indexed}

    def add(self, fields: dict[str, str]) -> str:
        item_id = f"*{self._next:X}"
        self._next += 1
        self._rows[item_id] = row = {".id": item_id, **fields}
        self.reindex(row, {})
        return item_id

    def get(self, item_id: str) -> dict[str, str]:
        if item_id not in self._rows:
            raise _Trap(MESSAGES["no_such_item"])
        return self._rows[item_id]

    def remove(self, ids: str) -> list[dict[str, str]]:
        """Remove a comma-separated list of ids, all or none."""
        wanted = [self.get(item_id) for item_id in ids.split(",")]
        for row in wanted:
            del self._rows[row[".id"]]
            self.reindex({}, row)
        return wanted

    def reindex(self, row: dict[str, str], before: dict[str, str]) -> None:
        """Update the indexes after a row changed from ``before`` (``{}``: added; ``row`` ``{}``: removed)."""
        item_id = row.get(".id") or before[".id"]
        for name, index in self._index.items():
            if name in before and before[name] != row.get(name):
                bucket = index[before[name]]
                bucket.pop(item_id, None)
                if not bucket:
                    del index[before[name]]
            if name in row:
                index.setdefault(row[name], {})[item_id] = None

    def rows(self) -> list[dict[str, str]]:
        return list(self._rows.values())

    def find(self, **fields: str) -> list[dict[str, str]]:
        key = next((name for name in fields if name in self._index), None)
        if key is None:
            candidates = self._rows.values()
        else:  # in the order the rows were added, like the full scan
            ids = sorted(self._index[key].get(fields[key], ()), key=lambda item_id: int(item_id[1:], 16))
            candidates = [self._rows[item_id] for item_id in ids]
        return [row for row in candidates if all(row.get(k) == v for k, v in fields.items())]


class _Session:
    """One client connection: reads sentences, asks the router for replies, writes them."""

    def __init__(self, router: SandboxRouter, sock: socket.socket) -> None:
        self.router = router
        self.sock = sock
        self.logged_in = False

    def serve(self) -> None:
        try:
            if self.router.ssl_context is not None:
                self.sock.settimeout(HANDSHAKE_TIMEOUT)
                self.sock = self.router.ssl_context.wrap_socket(self.sock, server_side=True)
            self.sock.settimeout(SESSION_IDLE_TIMEOUT)
            while (words := self._read_sentence()) is not None:
                if words and not self._answer(words):
                    break
        except (OSError, ProtocolError):
            pass  # the client went away, failed the TLS handshake or sent garbage: end the session
        finally:
            self.sock.close()
            self.router._forget(self)

    def close(self) -> None:
        """Wake a blocked read so the session thread ends."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed by the peer or by serve()

    def _answer(self, words: list[str]) -> bool:
        """Handle one sentence; False when the connection must be closed."""
        router = self.router
        router._record(words)
        if router.mode == "hang":
            return True
        sentences, keep_open = router._execute(self, words)
        if router.latency > 0:
            router._stopping.wait(router.latency)
        data = b"".join(encode_sentence(sentence) for sentence in sentences)
        if router._take_drop():
            # Close mid-sentence: the client sees a truncated reply then EOF.
            self.sock.sendall(data[: max(1, len(encode_sentence(sentences[0])) // 2)])
            return False
        self.sock.sendall(data)
        return keep_open

    def _read_sentence(self) -> list[str] | None:
        """The next sentence (possibly empty), or None at end of stream."""
        words: list[str] = []
        while True:
            first = self.sock.recv(1)
            if not first:
                return None
            length = decode_length(first[0], self._read_exact)
            if length == 0:
                return words
            if length > MAX_WORD:
                raise ProtocolError(f"word of {length} bytes")
            words.append(self._read_exact(length).decode("utf-8", "replace"))

    def _read_exact(self, count: int) -> bytes:
        data = bytearray()
        while len(data) < count:
            chunk = self.sock.recv(min(count - len(data), 1 << 20))
            if not chunk:
                raise ProtocolError("connection closed inside a word")
            data += chunk
        return bytes(data)


# --- the router --------------------------------------------------------------------------------

_USER_FIELDS = frozenset({
    "name", "password", "profile", "server", "limit-uptime", "limit-bytes-in", "limit-bytes-out",
    "limit-bytes-total", "mac-address", "address", "email", "routes", "comment", "disabled",
})
_WALLED_GARDEN_IP_FIELDS = frozenset({
    "action", "dst-host", "dst-address", "dst-port", "protocol", "server", "src-address",
    "comment", "disabled",
})


class SandboxRouter:
    """A RouterOS API server with an in-memory hotspot. Thread-safe; start() then talk TCP to it.

    Fault knobs, plain attributes settable at any time:
    ``latency`` seconds slept before each batch of reply sentences; ``mode`` "normal", "hang"
    (read but never answer), "drop" (the next reply is cut mid-sentence and the connection
    closed; then back to "normal") or "refuse" (as if the API service were disabled: open
    sessions are closed and the listening socket too, so connects are refused; any other mode
    reopens it on the same port);
    ``empty_replies`` answers an empty print with ``!empty`` like RouterOS 7.18+;
    ``mikhmon_on_login`` makes active/login run what a Mikhmon on-login script does.
    ``clock`` (a datetime) freezes the router's clock; None follows real time in ``time_zone``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "admin",
        password: str = "sandbox",
        version: str = "6.49.10 (long-term)",
        identity: str = "Kiosque-Sandbox",
        ssl_context: ssl.SSLContext | None = None,
        seed: bool = True,
        dns_name: str = "wifi.net",
    ) -> None:
        self.host, self.port = host, port
        self.dns_name = dns_name  # the hotspot's name, where phones log in (its server profile's dns-name)
        self.username, self.password = username, password
        self.version, self.identity = version, identity
        self.ssl_context = ssl_context
        self.time_zone = "Africa/Porto-Novo"
        self.clock: datetime | None = None
        self.latency = 0.0
        self.empty_replies = False
        self.mikhmon_on_login = False
        self.received: list[list[str]] = []
        self.connections = 0

        self._mode = "normal"
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._sessions: dict[_Session, threading.Thread] = {}
        self._started = time.monotonic()
        self._active_since: dict[str, float] = {}

        self._users, self._user_profiles = _Table("name"), _Table()
        self._servers, self._server_profiles = _Table(), _Table()
        self._hosts, self._active = _Table("address"), _Table("user", "address")
        self._scripts, self._walled_garden_ip = _Table(), _Table()
        self._commands: dict[str, Callable[[_Session, _Command], list[list[str]]]] = {
            "/login": self._login,
            "/quit": self._quit,
            "/ip/hotspot/user/print": lambda s, c: self._print(self._user_rows(), c),
            "/ip/hotspot/user/add": self._user_add,
            "/ip/hotspot/user/set": self._user_set,
            "/ip/hotspot/user/remove": lambda s, c: self._remove(self._users, c),
            "/ip/hotspot/user/profile/print": lambda s, c: self._print(self._user_profiles.rows(), c),
            "/ip/hotspot/print": lambda s, c: self._print(self._servers.rows(), c),
            "/ip/hotspot/profile/print": lambda s, c: self._print(self._server_profiles.rows(), c),
            "/ip/hotspot/host/print": lambda s, c: self._print(self._hosts.rows(), c),
            "/ip/hotspot/active/print": lambda s, c: self._print(self._active_rows(), c),
            "/ip/hotspot/active/remove": self._active_remove,
            "/ip/hotspot/active/login": self._active_login,
            "/ip/hotspot/walled-garden/ip/print": lambda s, c: self._print(self._walled_garden_ip.rows(), c),
            "/ip/hotspot/walled-garden/ip/add": self._walled_garden_ip_add,
            "/system/resource/print": lambda s, c: self._print([self._resource_row()], c),
            "/system/identity/print": lambda s, c: self._print([{"name": self.identity}], c),
            "/system/clock/print": lambda s, c: self._print([self._clock_row()], c),
            "/system/script/print": lambda s, c: self._print(self._scripts.rows(), c),
        }
        self._menus = {word.rpartition("/")[0] for word in self._commands}
        if seed:
            self._seed()

    # -- lifecycle

    def start(self) -> SandboxRouter:
        """Bind (port 0 picks a free port, kept for later reopenings) and serve in daemon threads."""
        self._stopping.clear()
        self._open_listener()
        if self._mode == "refuse":
            self._close_listener()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="sandbox-router", daemon=True)
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._close_listener()
        for thread in [self._accept_thread, *self._close_sessions()]:
            if thread is not None:
                thread.join(timeout=2)

    def __enter__(self) -> SandboxRouter:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        with self._lock:
            previous, self._mode = self._mode, value
            serving = self._accept_thread is not None and not self._stopping.is_set()
            if not serving or (previous == "refuse") == (value == "refuse"):
                return
            if value == "refuse":
                self._close_listener()
                self._close_sessions()
            else:
                self._open_listener()

    @property
    def open_connections(self) -> int:
        """Client connections currently open."""
        with self._lock:
            return len(self._sessions)

    def _open_listener(self) -> None:
        listener = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self.port))
        listener.listen(64)
        listener.settimeout(ACCEPT_POLL)
        with self._lock:
            self._listener = listener
            self.port = listener.getsockname()[1]

    def _close_listener(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # stops listening at once, even mid-accept()
            except OSError:
                pass  # not connected in the kernel's view on some platforms; close() suffices
            listener.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                listener = self._listener
            if listener is None:
                self._stopping.wait(0.05)
                continue
            try:
                sock, _ = listener.accept()
            except (TimeoutError, OSError):
                continue  # poll timeout, or the listener was closed by refuse/stop
            session = _Session(self, sock)
            thread = threading.Thread(target=session.serve, name="sandbox-router-session", daemon=True)
            with self._lock:
                if self._stopping.is_set():  # stop() has already closed the sessions it knew
                    sock.close()
                    break
                self.connections += 1
                self._sessions[session] = thread
            thread.start()

    def _close_sessions(self) -> list[threading.Thread]:
        """Close every open session; returns their threads."""
        with self._lock:
            sessions = dict(self._sessions)
        for session in sessions:
            session.close()
        return list(sessions.values())

    def _forget(self, session: _Session) -> None:
        with self._lock:
            self._sessions.pop(session, None)

    def _record(self, words: list[str]) -> None:
        with self._lock:
            self.received.append(list(words))

    def _take_drop(self) -> bool:
        """True once after mode was set to "drop"; the mode then returns to "normal"."""
        with self._lock:
            if self._mode != "drop":
                return False
            self._mode = "normal"
            return True

    # -- state helpers

    def add_user_profile(self, name: str, on_login: str = "", **fields: object) -> None:
        """Add a hotspot user profile; keyword names use ``_`` for ``-`` (shared_users=2)."""
        row = {"name": name, "shared-users": "1", "status-autorefresh": "1m"}
        row |= {key.replace("_", "-"): str(value) for key, value in fields.items()}
        if on_login:
            row["on-login"] = on_login
        with self._lock:
            self._user_profiles.add(row)

    def add_server(self, name: str, profile: str = "hsprof1", interface: str = "bridge-hotspot") -> None:
        with self._lock:
            self._servers.add({
                "name": name, "interface": interface, "address-pool": "hs-pool-1", "profile": profile,
                "idle-timeout": "5m", "addresses-per-mac": "2", "disabled": "false", "invalid": "false",
            })

    def add_server_profile(self, name: str, dns_name: str = "wifi.net", login_by: str = "cookie,http-chap") -> None:
        with self._lock:
            self._server_profiles.add({
                "name": name, "hotspot-address": "10.5.50.1", "dns-name": dns_name,
                "html-directory": "hotspot", "login-by": login_by, "http-cookie-lifetime": "3d",
                "use-radius": "false", "default": "false",
            })

    def set_server_profile(self, name: str, **fields: str) -> None:
        """Change a server profile as `/ip hotspot profile set` would (html_directory="flash/kiosque")."""
        with self._lock:
            for row in self._server_profiles.find(name=name):
                row.update({key.replace("_", "-"): value for key, value in fields.items()})

    def add_host(self, ip: str, mac: str, server: str = "hotspot1") -> None:
        """A device on the hotspot's LAN; a device already known at this address is not added again."""
        with self._lock:
            if any(row["mac-address"] == mac.upper() for row in self._hosts.find(address=ip)):
                return
            self._hosts.add({
                "mac-address": mac.upper(), "address": ip, "to-address": ip, "server": server,
                "authorized": "false", "bypassed": "false", "dynamic": "true",
            })

    def add_script(self, name: str, source: str = "", owner: str = "admin", comment: str = "") -> None:
        """Add a /system/script item (Mikhmon keeps sale records and Quick Print packages there)."""
        with self._lock:
            self._add_script(name, source, owner, comment)

    def users(self) -> list[dict[str, str]]:
        with self._lock:
            return self._user_rows()

    def active(self) -> list[dict[str, str]]:
        with self._lock:
            return self._active_rows()

    def host_addresses(self) -> set[str]:
        with self._lock:
            return {row["address"] for row in self._hosts.rows()}

    def _seed(self) -> None:
        self.add_server_profile("hsprof1", dns_name=self.dns_name)
        self.add_server("hotspot1")
        self.add_user_profile("default", default="true")
        for name, expmode, price, validity, selling_price, lock, rate_limit in _SEED_PROFILES:
            script = mikhmon_on_login(expmode, price, validity, selling_price, lock, name)
            self.add_user_profile(name, script, rate_limit=rate_limit, parent_queue="none")

    def _add_script(self, name: str, source: str, owner: str, comment: str) -> None:
        row = {
            "name": name, "owner": owner, "dont-require-permissions": "false", "run-count": "0",
            "policy": "ftp,reboot,read,write,policy,test,password,sniff,sensitive,romon",
            "source": source, "invalid": "false",
        }
        self._scripts.add(row | ({"comment": comment} if comment else {}))

    # -- dispatch

    def _execute(self, session: _Session, words: list[str]) -> tuple[list[list[str]], bool]:
        """The reply sentences for one command, and whether the connection stays open."""
        command = _Command.parse(words)
        try:
            # Real routers' answer to commands before login is unverified; this one ends the
            # session with !fatal, which clients surface as a hard error rather than a retryable trap.
            if not session.logged_in and command.word not in ("/login", "/quit"):
                raise _Fatal(MESSAGES["not_logged_in"])
            handler = self._commands.get(command.word)
            if handler is None:
                if command.menu in self._menus:
                    raise _Trap(MESSAGES["no_such_command"].format(verb=command.verb))
                raise _Trap(MESSAGES["no_such_command_prefix"])
            with self._lock:
                sentences = handler(session, command)
        except _Trap as trap:
            sentences = [["!trap", f"=message={trap}"], ["!done"]]
        except _Fatal as fatal:
            return [["!fatal", str(fatal)]], False
        if command.tag is not None:
            sentences = [[*sentence, f".tag={command.tag}"] for sentence in sentences]
        return sentences, True

    def _print(self, rows: list[dict[str, str]], command: _Command) -> list[list[str]]:
        matched = [row for row in rows if _query_matches(row, command.queries)]
        if "count-only" in command.attrs:
            return [["!done", f"=ret={len(matched)}"]]
        if ".proplist" in command.attrs:
            keys = command.attrs[".proplist"].split(",")
            matched = [{key: row[key] for key in keys if key in row} for row in matched]
        if not matched and self.empty_replies:
            return [["!empty"], ["!done"]]
        return [["!re", *(f"={key}={value}" for key, value in row.items())] for row in matched] + [["!done"]]

    def _remove(self, table: _Table, command: _Command) -> list[list[str]]:
        table.remove(command.attrs.get(".id", ""))
        return [["!done"]]

    # -- login

    def _login(self, session: _Session, command: _Command) -> list[list[str]]:
        attrs = command.attrs
        if "name" not in attrs and "password" not in attrs:
            # Pre-6.43 challenge: still offered, but the md5 answer is refused (RouterOS >= 6.45.1).
            return [["!done", f"=ret={secrets.token_hex(16)}"]]
        if "response" in attrs or (attrs.get("name"), attrs.get("password")) != (self.username, self.password):
            raise _Trap(MESSAGES["bad_login"])
        session.logged_in = True
        return [["!done"]]

    def _quit(self, session: _Session, command: _Command) -> list[list[str]]:
        raise _Fatal(MESSAGES["quit"])

    # -- hotspot users

    def _user_rows(self) -> list[dict[str, str]]:
        return [dict(row) for row in self._users.rows()]

    def _user_add(self, session: _Session, command: _Command) -> list[list[str]]:
        fields = self._checked_user({"profile": "default", "server": "all"}, _arguments(command), None)
        counters = {"uptime": "0s", "bytes-in": "0", "bytes-out": "0", "packets-in": "0", "packets-out": "0"}
        item_id = self._users.add(fields | counters | {"dynamic": "false", "disabled": fields.get("disabled", "false")})
        return [["!done", f"=ret={item_id}"]]

    def _user_set(self, session: _Session, command: _Command) -> list[list[str]]:
        target = command.attrs.get(".id", "")
        rows = self._users.find(name=target) or [self._users.get(target)]  # .id may also be the name
        row = rows[0]
        fields = self._checked_user(row, _arguments(command), row[".id"])
        before = dict(row)
        row.clear()
        row.update(fields)
        self._users.reindex(row, before)
        return [["!done"]]

    def _checked_user(self, current: dict[str, str], changes: dict[str, str], own_id: str | None) -> dict[str, str]:
        """``current`` updated with ``changes``, validated like /ip/hotspot/user/add and set do."""
        for key in changes.keys() - _USER_FIELDS:
            raise _Trap(MESSAGES["unknown_parameter"].format(name=key))
        fields = dict(current)
        for key, value in changes.items():
            if value:
                fields[key] = self._normalised(key, value)
            else:
                fields.pop(key, None)  # an empty value unsets the field, which then leaves the row
        if not fields.get("name"):
            raise _Trap(MESSAGES["missing_name"])
        if not self._user_profiles.find(name=fields.get("profile", "default")):
            raise _Trap(MESSAGES["bad_profile"])
        server = fields.get("server", "all")
        if server != "all" and not self._servers.find(name=server):
            raise _Trap(MESSAGES["bad_server"])
        # The scope of "for this server" is unverified (docs/routeros.md#hotspot-users): here "all" clashes with every server.
        for other in self._users.find(name=fields["name"]):
            other_server = other.get("server", "all")
            if other[".id"] != own_id and (server == other_server or "all" in (server, other_server)):
                raise _Trap(MESSAGES["duplicate_user"])
        return fields

    @staticmethod
    def _normalised(key: str, value: str) -> str:
        """A non-empty input value as RouterOS stores and prints it; a trap when it is invalid."""
        if key == "limit-uptime":
            seconds = parse_duration(value)
            if seconds is None:
                raise _Trap(MESSAGES["bad_value"].format(name=key))
            return format_duration(seconds)
        if key.startswith("limit-bytes"):
            if not value.isdigit():
                raise _Trap(MESSAGES["bad_value"].format(name=key))
            return str(int(value))
        if key == "mac-address":
            if not _MAC.fullmatch(value):
                raise _Trap(MESSAGES["bad_value"].format(name=key))
            return value.upper()
        if key == "disabled":
            if value not in _BOOLEANS:
                raise _Trap(MESSAGES["bad_value"].format(name=key))
            return _BOOLEANS[value]
        return value

    # -- active sessions

    def _active_rows(self) -> list[dict[str, str]]:
        now = time.monotonic()
        return [
            row | {"uptime": format_duration(int(now - self._active_since[row[".id"]]))}
            for row in self._active.rows()
        ]

    def _active_remove(self, session: _Session, command: _Command) -> list[list[str]]:
        self._end_sessions(command.attrs.get(".id", ""))
        return [["!done"]]

    def _end_sessions(self, ids: str) -> None:
        for row in self._active.remove(ids):
            del self._active_since[row[".id"]]
            for host in self._hosts.find(address=row["address"]):
                host["authorized"] = "false"

    def _active_login(self, session: _Session, command: _Command) -> list[list[str]]:
        attrs = command.attrs
        name, ip = attrs.get("user", ""), attrs.get("ip", "")
        hosts = self._hosts.find(address=ip)
        if not hosts:
            raise _Trap(MESSAGES["active_no_host"])
        host = hosts[0]
        mac = attrs.get("mac-address", host["mac-address"]).upper()
        users = self._users.find(name=name)
        if not users or users[0].get("password", "") != attrs.get("password", ""):
            raise _Trap(MESSAGES["active_bad_credentials"])
        user = users[0]
        if user.get("mac-address", ANY_MAC) not in (ANY_MAC, mac):
            raise _Trap(MESSAGES["active_bad_mac"].format(user=name))
        profile = self._user_profiles.find(name=user.get("profile", "default"))[0]
        shared = profile.get("shared-users", "1")
        elsewhere = [row for row in self._active.find(user=name) if row["address"] != ip]
        if shared.isdigit() and len(elsewhere) >= int(shared):
            raise _Trap(MESSAGES["active_session_limit"].format(user=name))
        for previous in self._active.find(address=ip):  # the host logs in again as this user
            self._end_sessions(previous[".id"])
        item_id = self._active.add({
            "server": host["server"], "user": name, "address": ip, "mac-address": mac,
            "login-by": "api", "uptime": "0s", "idle-time": "0s", "bytes-in": "0", "bytes-out": "0",
        })
        self._active_since[item_id] = time.monotonic()
        host["authorized"] = "true"
        if self.mikhmon_on_login:
            self._run_mikhmon_on_login(user, profile, ip, mac)
        return [["!done"]]

    def _run_mikhmon_on_login(self, user: dict[str, str], profile: dict[str, str], ip: str, mac: str) -> None:
        """What Mikhmon's on-login script does (docs/routeros.md#routeros-710-date-format), done at once instead of after delays."""
        header = parse_mikhmon_header(profile.get("on-login", ""))
        if header is None:
            return
        if header.lock:
            user["mac-address"] = mac
        comment = user.get("comment", "")
        seconds = parse_duration(header.validity)
        if seconds is None or (comment and comment[:2] not in ("vc", "up")):
            return
        now = self._now()
        expiry = now + timedelta(seconds=seconds)
        user["comment"] = f"{_format_date(expiry, self.version)} {expiry:%H:%M:%S}"
        if header.expmode in ("remc", "ntfc"):
            date = _format_date(now, self.version)
            owner = now.strftime("%m%Y" if _new_clock_format(self.version) else "%b%Y").lower()
            name = "-|-".join((date, f"{now:%H:%M:%S}", user["name"], header.price, ip, mac,
                               header.validity, profile["name"], comment))
            self._add_script(name, date, owner, "mikhmon")

    # -- other menus

    def _walled_garden_ip_add(self, session: _Session, command: _Command) -> list[list[str]]:
        arguments = _arguments(command)
        for key in arguments.keys() - _WALLED_GARDEN_IP_FIELDS:
            raise _Trap(MESSAGES["unknown_parameter"].format(name=key))
        row = {"action": "accept"} | {key: value for key, value in arguments.items() if value}
        if row["action"] not in ("accept", "drop", "reject"):
            raise _Trap(MESSAGES["bad_action"])
        item_id = self._walled_garden_ip.add(row | {"disabled": row.get("disabled", "false"), "dynamic": "false"})
        return [["!done", f"=ret={item_id}"]]

    def _now(self) -> datetime:
        return self.clock or datetime.now(ZoneInfo(self.time_zone))

    def _resource_row(self) -> dict[str, str]:
        return {
            "uptime": format_duration(int(time.monotonic() - self._started)),
            "version": self.version, "build-time": "2024-01-16 10:12:34", "factory-software": "6.44.6",
            "free-memory": "98041856", "total-memory": "134217728", "cpu": "ARMv7", "cpu-count": "4",
            "cpu-frequency": "716", "cpu-load": "3", "free-hdd-space": "1638400",
            "total-hdd-space": "16777216", "architecture-name": "arm", "board-name": "hAP ac^2",
            "platform": "MikroTik",
        }

    def _clock_row(self) -> dict[str, str]:
        now = self._now()
        return {
            "time": f"{now:%H:%M:%S}", "date": _format_date(now, self.version),
            "time-zone-autodetect": "false", "time-zone-name": self.time_zone,
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a sandbox MikroTik RouterOS API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8728)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="sandbox")
    parser.add_argument("--version", default="6.49.10 (long-term)", help='RouterOS version, e.g. "7.16 (stable)"')
    args = parser.parse_args(argv)
    router = SandboxRouter(args.host, args.port, args.user, args.password, args.version).start()
    print(f"Sandbox router listening on {router.host}:{router.port} (user {args.user})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        router.stop()


if __name__ == "__main__":
    main()
