"""The app's RouterOS API client, over routeros-api.

routeros-api speaks the protocol; this module adds what it lacks (docs/routeros.md#routeros-api-client-library):
one thread at a time per connection (the library is not thread-safe), a few connections per
router so that one slow round trip does not hold up every other ticket of that router, the
egress policy's checks, the timeout on connect and on every
read, one reconnect-and-retry when a reused connection turns out to be dead, no socket left
open after a failed login, and typed errors whose text is built only from safe parts. The
library's own messages embed the whole command, password included, so they are never used,
logged or chained.

Every connection goes through the address's egress policy (portal/routeros/egress.py): the
client opens the socket itself, to an address the policy checked, and hands it to routeros-api,
which would otherwise look the name up again and connect wherever it points. API user names and
passwords holding a control character are refused before any connection: RouterOS words are
length-prefixed, but a line-based service (mail, Redis) would read a CR LF as a new command.
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import routeros_api
from routeros_api import api_communicator, api_socket, base_api
from routeros_api.api import RouterOsApi
from routeros_api.exceptions import (
    RouterOsApiCommunicationError,
    RouterOsApiConnectionClosedError,
    RouterOsApiError,
)

from portal.routeros.egress import EgressPolicy, EgressRefused, unbracketed

logger = logging.getLogger(__name__)

T = TypeVar("T")
Row = dict[str, str]

USERS = "/ip/hotspot/user"
ACTIVE = "/ip/hotspot/active"
IDLE_SECONDS = 60.0
# API sessions one process opens to one router at most. A second one is opened only while the
# first is busy; every gunicorn worker and the worker have their own, and the router limits how
# many it accepts (Mikhmon needs one too).
MAX_CONNECTIONS = 2


@dataclass(frozen=True)
class RouterAddress:
    """Where and how to reach one router's API (8728, or 8729 for api-ssl)."""

    host: str
    port: int
    username: str
    password: str = field(repr=False)
    use_tls: bool = False
    tls_verify: bool = True
    timeout: float = 5.0
    # Where connections may go; the default allows public addresses on 8728 and 8729 only.
    policy: EgressPolicy = field(default=EgressPolicy(), repr=False)


class RouterError(Exception):
    """A router call failed. The text never holds a password nor the words of the command."""

    def __init__(self, message: str, *, host: str, port: int) -> None:
        super().__init__(f"{host}:{port}: {message}")
        self.host = host
        self.port = port


class RouterUnreachable(RouterError):
    """No API session could be opened: refused (API service disabled), no route, DNS failure."""


class RouterRefused(RouterUnreachable):
    """Kiosque's egress policy refused the connection: address, port or credentials. Nothing was sent."""


class RouterConnectionLost(RouterUnreachable):
    """An open session broke mid-call: the connection was closed or reset, or the router ended it."""


class RouterTimeout(RouterError):
    """The router accepted nothing or answered nothing within the address's timeout."""


class RouterSlow(RouterTimeout):
    """An API session already open stopped answering within the timeout (the router did answer before)."""


class RouterAuthFailed(RouterError):
    """The router refused the API user name or password."""


class RouterTLSError(RouterError):
    """The api-ssl handshake failed, certificate verification included."""


class RouterCommandError(RouterError):
    """The router answered the command with a !trap; ``router_message`` is its text."""

    def __init__(self, message: str, *, host: str, port: int, router_message: str) -> None:
        super().__init__(message, host=host, port=port)
        self.router_message = router_message


class NameCollisions(RouterError):
    """No free username could be found: the router (or Kiosque's records) holds every name drawn."""


@dataclass(frozen=True)
class RouterFacts:
    identity: str
    version: str
    board_name: str
    uptime: str
    date: str
    time: str
    time_zone: str


def _unverified_tls_context() -> ssl.SSLContext:
    """TLS without certificate checks: for api-ssl with a self-signed certificate, or none at all."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    # api-ssl without a certificate only offers anonymous Diffie-Hellman (docs/routeros.md#api-and-api-ssl),
    # which OpenSSL's DEFAULT list drops for good; offer it last. Nothing is verified here anyway.
    context.set_ciphers("HIGH:+aNULL:@SECLEVEL=0")
    return context


def has_control_character(text: str) -> bool:
    """Whether ``text`` holds a control character (Unicode category Cc: CR, LF, NUL, DEL, C1...)."""
    return any(unicodedata.category(char) == "Cc" for char in text)


def open_socket(address: RouterAddress) -> socket.socket:
    """A connected socket to the router, TLS included, through the address's egress policy.

    The TCP connection goes to an address the policy checked. For api-ssl the name the owner
    typed stays the TLS server name, so the certificate is verified against it (and SNI sent).
    """
    if has_control_character(address.username) or has_control_character(address.password):
        raise EgressRefused("credentials")
    sock = address.policy.connect(address.host, address.port, address.timeout)
    try:
        sock.settimeout(address.timeout)  # for the TLS handshake and every read
        # routeros-api sends each word with its own send(): with Nagle's algorithm every command
        # would then wait for the router's delayed ACK (~40 ms on Linux).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        api_socket.set_keepalive(sock, after_idle_sec=10)  # what routeros-api does to its own
        if address.use_tls:
            context = ssl.create_default_context() if address.tls_verify else _unverified_tls_context()
            sock = context.wrap_socket(sock, server_hostname=unbracketed(address.host))
    except BaseException:
        sock.close()
        raise
    return sock


class _CheckedPool(routeros_api.RouterOsApiPool):
    """routeros-api's connection, opened on a socket from `open_socket` instead of its own.

    `get_api` is the library's (RouterOS-api 0.21.0) but for where the socket comes from.
    """

    def __init__(self, address: RouterAddress) -> None:
        super().__init__(address.host, username=address.username, password=address.password,
                         port=address.port, plaintext_login=True,  # RouterOS >= 6.45.1 refuses the old login
                         use_ssl=address.use_tls)
        self.socket_timeout = address.timeout
        self._address = address

    def get_api(self) -> RouterOsApi:
        if not self.connected:
            self.socket = api_socket.SocketWrapper(open_socket(self._address))
            communicator = api_communicator.ApiCommunicator(base_api.Connection(self.socket))
            self.api = RouterOsApi(communicator)
            for handler in self._get_exception_handlers():
                communicator.add_exception_handler(handler)
            self.api.login(self.username, self.password, self.plaintext_login)
            self.connected = True
        return self.api


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _socket_error(exc: BaseException) -> OSError | None:
    """The OSError behind a routeros-api error (it wraps them as args[0] or raises in their handler)."""
    for candidate in (exc, *exc.args[:1], exc.__context__):
        if isinstance(candidate, OSError):
            return candidate
    return None


def _rows(response: Iterable[dict[str, Any]]) -> list[Row]:
    return [dict(row) for row in response]


def _first_row(api: RouterOsApi, path: str) -> Row:
    rows = api.get_resource(path).get()
    return dict(rows[0]) if rows else {}


class RouterClient:
    """Up to ``max_connections`` API connections to one router, opened when needed, reopened when broken.

    A connection serves one call at a time: routeros-api shares one socket, tag counter and reply
    buffer per connection. Calls made at the same time use different connections, opened only
    when every open one is busy; a call waits (up to the address's timeout) when all
    ``max_connections`` are. Mutating calls retry idempotently: the dropped attempt may have gone
    through.
    """

    def __init__(self, address: RouterAddress, *, max_connections: int = MAX_CONNECTIONS) -> None:
        self.address = address
        self.max_connections = max(1, max_connections)
        self.last_used = time.monotonic()
        self._where = f"{address.host}:{address.port}"
        self._free = threading.Condition()  # guards the three below
        self._idle: list[routeros_api.RouterOsApiPool] = []  # the last one used is taken first
        self._open = 0  # connections made, idle or in use
        self._generation = 0  # close() moves it on: connections of an older one are not kept

    def _connection(self) -> routeros_api.RouterOsApiPool:
        """A connection (not yet logged in when new): it connects, through the egress policy, on use."""
        return _CheckedPool(self.address)

    def __repr__(self) -> str:
        return f"RouterClient({self.address!r})"

    # -- reads

    def facts(self) -> RouterFacts:
        def read(api: RouterOsApi) -> RouterFacts:
            identity = _first_row(api, "/system/identity")
            resource = _first_row(api, "/system/resource")
            clock = _first_row(api, "/system/clock")
            return RouterFacts(
                identity=identity.get("name", ""),
                version=resource.get("version", ""),
                board_name=resource.get("board-name", ""),
                uptime=resource.get("uptime", ""),
                date=clock.get("date", ""),
                time=clock.get("time", ""),
                time_zone=clock.get("time-zone-name", ""),
            )

        return self._call(read)

    def hotspot_servers(self) -> list[Row]:
        return self._call(lambda api: _rows(api.get_resource("/ip/hotspot").get()))

    def server_profiles(self) -> list[Row]:
        return self._call(lambda api: _rows(api.get_resource("/ip/hotspot/profile").get()))

    def user_profiles(self) -> list[Row]:
        return self._call(lambda api: _rows(api.get_resource("/ip/hotspot/user/profile").get()))

    def find_users(self, *, name: str | None = None, comment: str | None = None) -> list[Row]:
        queries = {key: value for key, value in (("name", name), ("comment", comment)) if value is not None}
        return self._call(lambda api: _rows(api.get_resource(USERS).get(**queries)))

    def active_sessions(self) -> list[Row]:
        return self._call(lambda api: _rows(api.get_resource(ACTIVE).get()))

    # -- writes

    def add_user(
        self,
        *,
        name: str,
        password: str,
        profile: str,
        server: str = "all",
        limit_uptime: str = "0",
        limit_bytes_total: int = 0,
        comment: str = "",
    ) -> str:
        """Create a hotspot user and return its ``.id`` (``*1A``)."""
        fields = {
            "name": name, "password": password, "profile": profile, "server": server,
            "limit-uptime": limit_uptime, "limit-bytes-total": str(limit_bytes_total),
        }
        if comment:  # routeros-api would send an empty value as a bare "=comment" word
            fields["comment"] = comment

        def add(api: RouterOsApi) -> str:
            return str(api.get_resource(USERS).call("add", fields).done_message["ret"])

        def add_unless_done(api: RouterOsApi) -> str:
            # Name and comment, not the password: an API user without the `sensitive` policy may
            # not be shown passwords (docs/routeros.md#api-user-and-policies).
            for row in api.get_resource(USERS).get(name=name):
                if row.get("comment", "") == comment:
                    return str(row["id"])
            return add(api)

        return self._call(add, retry=add_unless_done, secrets=(password,))

    def remove_user(self, user_id: str) -> None:
        def remove(api: RouterOsApi) -> None:
            api.get_resource(USERS).remove(id=user_id)

        def remove_unless_done(api: RouterOsApi) -> None:
            if api.get_resource(USERS).get(id=user_id):
                remove(api)

        self._call(remove, retry=remove_unless_done)

    def active_login(self, *, user: str, password: str, ip: str, mac: str | None = None,
                     check_first: bool = False) -> None:
        """Log the hotspot host at ``ip`` in as ``user`` (/ip/hotspot/active/login).

        ``check_first``: skip the login when the host is already logged in as ``user`` (an
        earlier attempt may have done it).
        """
        arguments = {"user": user, "password": password, "ip": ip}
        if mac:
            arguments["mac-address"] = mac

        def login(api: RouterOsApi) -> None:
            api.get_resource(ACTIVE).call("login", arguments)

        def login_unless_done(api: RouterOsApi) -> None:
            if not api.get_resource(ACTIVE).get(address=ip, user=user):
                login(api)

        self._call(login_unless_done if check_first else login, retry=login_unless_done, secrets=(password,))

    def close(self) -> None:
        """Close the idle connections now, and those in use when their call ends."""
        with self._free:
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._generation += 1
            self._free.notify_all()
        for pool in idle:
            pool.disconnect()

    # -- plumbing

    def _call(
        self,
        op: Callable[[RouterOsApi], T],
        *,
        retry: Callable[[RouterOsApi], T] | None = None,
        secrets: tuple[str, ...] = (),
    ) -> T:
        """Run ``op`` on the connection; once more (as ``retry``) on a fresh one if a reused one broke.

        A connection opened by this call is not retried, and neither is a timeout: either would
        only double the caller's wait. Errors are raised outside any ``except`` block so that no
        routeros-api exception (whose text holds the command) travels along as their context.
        """
        secrets = (self.address.password, *secrets)
        pool, generation = self._take()
        if pool is None:
            raise RouterSlow(f"no free API session within {self.address.timeout:g} s", host=self.address.host,
                             port=self.address.port)
        try:
            reused = pool.connected
            result, error = self._attempt(pool, op, secrets)
            if reused and isinstance(error, RouterConnectionLost):
                logger.info("reconnecting once after: %s", error)
                result, error = self._attempt(pool, retry or op, secrets)
        finally:
            self._give_back(pool, generation)
        if error is not None:
            logger.debug("router call failed: %s", error)
            raise error
        return cast(T, result)

    def _take(self) -> tuple[routeros_api.RouterOsApiPool | None, int]:
        """An idle connection, else a new one if fewer than max_connections are open, else wait."""
        deadline = time.monotonic() + self.address.timeout
        with self._free:
            while True:
                if self._idle:
                    return self._idle.pop(), self._generation
                if self._open < self.max_connections:
                    self._open += 1
                    return self._connection(), self._generation
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None, self._generation
                self._free.wait(remaining)

    def _give_back(self, pool: routeros_api.RouterOsApiPool, generation: int) -> None:
        with self._free:
            self.last_used = time.monotonic()
            keep = generation == self._generation
            if keep:
                self._idle.append(pool)
            else:
                self._open -= 1
            self._free.notify()
        if not keep:
            pool.disconnect()

    def _attempt(self, pool: routeros_api.RouterOsApiPool, op: Callable[[RouterOsApi], T],
                 secrets: tuple[str, ...]) -> tuple[T | None, RouterError | None]:
        logged_in = pool.connected
        try:
            api = pool.get_api()
            if not logged_in:
                logger.debug("%s: API session opened", self._where)
                logged_in = True
            return op(api), None
        # OSError: connection, name lookup and TLS handshake errors (the socket is opened here).
        except (RouterOsApiError, OSError, EgressRefused) as exc:
            error = self._translate(exc, logged_in, secrets)
        if not isinstance(error, RouterCommandError):
            pool.disconnect()  # a failed login or a broken session: never keep (or leak) the socket
        return None, error

    def _translate(self, exc: RouterOsApiError | OSError | EgressRefused, logged_in: bool,
                   secrets: tuple[str, ...]) -> RouterError:
        where = {"host": self.address.host, "port": self.address.port}
        if isinstance(exc, EgressRefused):  # its text says no more than this; the operator's log says why
            logger.warning("%s: connection refused by the egress policy (%s)", self._where, exc.reason)
            return RouterRefused("refused by the server's policy", **where)
        if isinstance(exc, RouterOsApiCommunicationError):  # a !trap; only original_message is safe
            text = _scrub(bytes(exc.original_message).decode("utf-8", "replace"), secrets)
            if logged_in:
                return RouterCommandError(f"router refused the command: {text}", router_message=text, **where)
            return RouterAuthFailed(f"login refused: {text}", **where)
        if isinstance(exc, ssl.SSLError):
            return RouterTLSError(f"TLS handshake failed: {exc}", **where)
        cause = _socket_error(exc)
        if isinstance(cause, TimeoutError):
            if logged_in:
                return RouterSlow(f"no answer within {self.address.timeout:g} s", **where)
            return RouterTimeout(f"no answer within {self.address.timeout:g} s", **where)
        if cause is not None:
            reason = cause.strerror or str(cause) or type(cause).__name__
        elif isinstance(exc, RouterOsApiConnectionClosedError):
            reason = "connection closed by the router"
        else:  # !fatal, unknown tag, malformed reply: the session is over
            reason = "the router ended the session or sent an unreadable reply"
        if logged_in:
            return RouterConnectionLost(f"connection lost: {reason}", **where)
        return RouterUnreachable(f"cannot open an API session: {reason}", **where)


_clients: dict[RouterAddress, RouterClient] = {}
_clients_lock = threading.Lock()


def router_client(address: RouterAddress, *, idle_seconds: float = IDLE_SECONDS) -> RouterClient:
    """The process-wide client for ``address``; clients unused for ``idle_seconds`` are closed.

    Fetch it per unit of work rather than keeping it: an expired client still works but
    reconnects outside this registry.
    """
    now = time.monotonic()
    with _clients_lock:
        expired = [key for key, client in _clients.items() if now - client.last_used > idle_seconds]
        stale = [_clients.pop(key) for key in expired]
        client = _clients.get(address)
        if client is None:
            client = _clients[address] = RouterClient(address)
        client.last_used = now
    for old in stale:
        logger.debug("closing idle API session to %s:%s", old.address.host, old.address.port)
        old.close()
    return client


def close_all() -> None:
    """Close every shared client (tests, shutdown)."""
    with _clients_lock:
        clients = list(_clients.values())
        _clients.clear()
    for client in clients:
        client.close()
