"""The sandbox router speaks RouterOS API as docs/routeros.md describes it.

Checked with two independent clients (routeros-api and librouteros) and with raw sockets whose
framing comes from librouteros's codec or is written out byte by byte.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from datetime import datetime

import librouteros
import pytest
import routeros_api
from librouteros.exceptions import FatalError, TrapError
from librouteros.protocol import decode_length as lr_decode_length
from librouteros.protocol import determine_length, encode_sentence
from librouteros.query import Key, Or
from routeros_api.exceptions import RouterOsApiCommunicationError

from sandbox.routeros import MESSAGES, SandboxRouter, decode_length, encode_length

PASSWORD = "sandbox"


@pytest.fixture
def router():
    with SandboxRouter() as sandbox:
        yield sandbox


@pytest.fixture
def ros(router):
    """routeros-api, logged in the post-6.43 way."""
    pool = routeros_api.RouterOsApiPool(
        router.host, port=router.port, username="admin", password=PASSWORD, plaintext_login=True
    )
    pool.socket_timeout = 5
    yield pool.get_api()
    pool.disconnect()


@pytest.fixture
def lib(router):
    api = librouteros.connect(router.host, "admin", PASSWORD, port=router.port, timeout=5, encoding="utf-8")
    yield api
    api.close()


class Raw:
    """A bare socket speaking the protocol, keeping every byte received."""

    def __init__(self, router: SandboxRouter, timeout: float = 5) -> None:
        self.sock = socket.create_connection((router.host, router.port), timeout=timeout)
        self.received = bytearray()

    def send(self, *words: str) -> None:
        self.sock.sendall(encode_sentence(*words, encoding="utf-8"))

    def sentence(self) -> list[str]:
        words = []
        while (first := self._exact(1)) != b"\x00":
            length = lr_decode_length(first + self._exact(determine_length(first)))
            words.append(self._exact(length).decode("utf-8"))
        return words

    def reply(self) -> list[list[str]]:
        """Sentences up to and including !done (or !fatal)."""
        sentences = [self.sentence()]
        while sentences[-1][0] not in ("!done", "!fatal"):
            sentences.append(self.sentence())
        return sentences

    def command(self, *words: str) -> list[list[str]]:
        self.send(*words)
        return self.reply()

    def login(self) -> Raw:
        assert self.command("/login", "=name=admin", f"=password={PASSWORD}") == [["!done"]]
        return self

    def at_eof(self) -> bool:
        return self.sock.recv(1) == b""

    def close(self) -> None:
        self.sock.close()

    def _exact(self, count: int) -> bytes:
        data = bytearray()
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
            self.received += chunk
        return bytes(data)


@pytest.fixture
def raw(router):
    client = Raw(router).login()
    yield client
    client.close()


def trap(message: str) -> list[list[str]]:
    return [["!trap", f"=message={message}"], ["!done"]]


# --- login ---------------------------------------------------------------------------------------

def test_login_with_both_clients(router, ros, lib):
    assert ros.get_resource("/system/identity").get() == [{"name": "Kiosque-Sandbox"}]
    assert tuple(lib("/system/identity/print")) == ({"name": "Kiosque-Sandbox"},)
    assert ["/login", "=name=admin", f"=password={PASSWORD}", ".tag=1"] in router.received


def test_wrong_password_is_trapped(router):
    pool = routeros_api.RouterOsApiPool(router.host, port=router.port, password="wrong", plaintext_login=True)
    with pytest.raises(RouterOsApiCommunicationError) as caught:
        pool.get_api()
    pool.disconnect()
    assert caught.value.original_message == b"invalid user name or password (6)"
    with pytest.raises(TrapError) as trapped:
        librouteros.connect(router.host, "admin", "wrong", port=router.port, timeout=5)
    assert trapped.value.message == "invalid user name or password (6)"
    client = Raw(router)
    assert client.command("/login", "=name=admin", "=password=wrong") == trap("invalid user name or password (6)")
    client.close()


def test_legacy_challenge_login_is_refused(router):
    client = Raw(router)
    ((done, ret),) = client.command("/login")
    assert done == "!done" and re.fullmatch(r"=ret=[0-9a-f]{32}", ret)
    client.close()
    pool = routeros_api.RouterOsApiPool(router.host, port=router.port, password=PASSWORD)  # plaintext_login=False
    with pytest.raises(RouterOsApiCommunicationError) as caught:
        pool.get_api()
    pool.disconnect()
    assert caught.value.original_message == b"invalid user name or password (6)"
    with pytest.raises(TrapError):
        librouteros.connect(router.host, "admin", PASSWORD, port=router.port, timeout=5, login_method=librouteros.token)


def test_commands_before_login_are_fatal(router):
    client = Raw(router)
    assert client.command("/system/identity/print") == [["!fatal", "not logged in"]]
    assert client.at_eof()
    client.close()


def test_quit_is_fatal_then_closes(router, raw, lib):
    assert raw.command("/quit", ".tag=9") == [["!fatal", "session terminated on request"]]
    assert raw.at_eof()
    with pytest.raises(FatalError, match="session terminated on request"):
        tuple(lib("/quit"))


# --- framing -------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("length", "prefix"),
    [
        (0x7F, b"\x7f"),
        (0x80, b"\x80\x80"),
        (0x3FFF, b"\xbf\xff"),
        (0x4000, b"\xc0\x40\x00"),
        (0x1FFFFF, b"\xdf\xff\xff"),
        (0x200000, b"\xe0\x20\x00\x00"),
        (0xFFFFFFF, b"\xef\xff\xff\xff"),
        (0x10000000, b"\xf0\x10\x00\x00\x00"),
    ],
)
def test_five_length_forms_encode_and_decode(length, prefix):
    assert encode_length(length) == prefix
    rest = iter([prefix[1:]])
    assert decode_length(prefix[0], lambda count: next(rest)[:count]) == length


@pytest.mark.parametrize(
    ("size", "prefix_of"),
    [
        (200, lambda n: (n | 0x8000).to_bytes(2, "big")),
        (20000, lambda n: (n | 0xC00000).to_bytes(3, "big")),
        (0x200000, lambda n: (n | 0xE0000000).to_bytes(4, "big")),
    ],
    ids=["2-byte", "3-byte", "4-byte"],
)
def test_long_words_round_trip(raw, ros, lib, size, prefix_of):
    comment = "c" * size
    raw.command("/ip/hotspot/user/add", "=name=long", f"=comment={comment}")
    raw.command("/ip/hotspot/user/print", "?name=long")
    word = f"=comment={comment}".encode()
    assert prefix_of(len(word)) + word in raw.received
    assert ros.get_resource("/ip/hotspot/user").get(name="long")[0]["comment"] == comment
    assert tuple(lib("/ip/hotspot/user/print"))[0]["comment"] == comment


def test_non_canonical_prefixes_and_empty_sentences_are_accepted(router, raw):
    command = b"/system/identity/print"
    raw.sock.sendall(b"\x00")  # an empty sentence: ignored
    raw.sock.sendall(b"\xf0" + len(command).to_bytes(4, "big") + command + b"\x00")
    assert raw.reply() == [["!re", "=name=Kiosque-Sandbox"], ["!done"]]
    raw.sock.sendall((len(command) | 0xE0000000).to_bytes(4, "big") + command + b"\x00")
    assert raw.reply() == [["!re", "=name=Kiosque-Sandbox"], ["!done"]]
    assert [] not in router.received


def test_reserved_control_byte_closes_the_connection(raw):
    raw.sock.sendall(b"\xf8")
    assert raw.at_eof()


def test_attribute_words_values_with_equals_and_empty(router, raw):
    raw.command("/ip/hotspot/user/add", "=name=eq", "=comment=a=b=c", "=email=")
    raw.command("/ip/hotspot/user/add", "=name=bare", "=comment")
    equals, bare = router.users()
    assert equals["comment"] == "a=b=c" and "email" not in equals
    assert "comment" not in bare  # "=comment" is an empty value, and unset fields leave the row
    assert ["!re", *(f"={k}={v}" for k, v in equals.items())] == raw.command("/ip/hotspot/user/print", "?name=eq")[0]


def test_tags_are_echoed_on_every_reply_sentence(raw):
    raw.command("/ip/hotspot/user/add", "=name=t1")
    assert all(s[-1] == ".tag=a7" for s in raw.command("/ip/hotspot/user/print", ".tag=a7"))
    assert raw.command("/ip/hotspot/user/remove", "=.id=*99", ".tag=x") == [
        ["!trap", "=message=no such item", ".tag=x"],
        ["!done", ".tag=x"],
    ]
    untagged = raw.command("/ip/hotspot/user/print")
    assert len(untagged) == 2 and not any(w.startswith(".tag") for s in untagged for w in s)


# --- print options and queries ------------------------------------------------------------------

@pytest.fixture
def three_users(ros):
    users = ros.get_resource("/ip/hotspot/user")
    users.add(name="alpha", password="1", profile="1h", comment="vc-100-06.15.24-")
    users.add(name="beta", password="2", profile="1d", comment="vc-100-06.15.24-")
    users.add(name="gamma", password="3", profile="1d", limit_bytes_total="1048576")
    return users


def names(rows) -> set[str]:
    return {row["name"] for row in rows}


def test_queries_equal_has_lacks_and(three_users, ros, raw):
    assert names(three_users.get(comment="vc-100-06.15.24-", profile="1d")) == {"beta"}

    def users(*queries: str) -> set[str]:
        reply = raw.command("/ip/hotspot/user/print", *queries)
        return {word[6:] for sentence in reply for word in sentence if word.startswith("=name=")}

    assert users("?comment") == {"alpha", "beta"}
    assert users("?-comment") == {"gamma"}
    assert users("?profile=1d", "?-comment") == {"gamma"}
    assert users("?>limit-bytes-total=1000") == {"gamma"}
    assert users("?name=alpha", "?name=gamma", "?#|") == {"alpha", "gamma"}
    assert users("?name=alpha", "?#!") == {"beta", "gamma"}
    assert raw.command("/ip/hotspot/user/print", "?#|") == trap(MESSAGES["bad_query"])


def test_queries_from_librouteros(three_users, lib):
    path = lib.path("ip", "hotspot", "user")
    name = Key("name")
    assert {r["name"] for r in path.select(name).where(name == "beta")} == {"beta"}
    assert {r["name"] for r in path.select(name).where(Or(name == "alpha", name == "gamma"))} == {"alpha", "gamma"}
    assert {r["name"] for r in path.select(name).where(name != "alpha")} == {"beta", "gamma"}
    assert {r["name"] for r in path.select(name).where(Key("profile").In("1h", "1d"))} == {"alpha", "beta", "gamma"}


def test_uptime_queries_accept_both_mikhmon_forms(three_users):
    assert names(three_users.get(uptime="0s")) == {"alpha", "beta", "gamma"}
    assert names(three_users.get(uptime="00:00:00", name="alpha")) == {"alpha"}
    assert three_users.get(uptime="1s") == []


def test_proplist_and_count_only(three_users, ros, lib):
    rows = three_users.call("print", {"proplist": "name,comment"}, {"profile": "1d"})
    assert [dict(r) for r in rows] == [{"name": "beta", "comment": "vc-100-06.15.24-"}, {"name": "gamma"}]
    assert three_users.call("print", {"count-only": ""}).done_message == {"ret": "3"}
    assert three_users.call("print", {"count-only": ""}, {"profile": "1d"}).done_message == {"ret": "2"}
    assert tuple(lib.path("ip", "hotspot", "user").select(Key(".id"))) == ({".id": "*1"}, {".id": "*2"}, {".id": "*3"})


def test_empty_mode_replies_empty_then_done(router, ros, lib, raw):
    router.empty_replies = True
    reply = raw.command("/ip/hotspot/user/print", "?name=nobody", ".tag=5")
    assert reply == [["!empty", ".tag=5"], ["!done", ".tag=5"]]
    assert ros.get_resource("/ip/hotspot/user").get(name="nobody") == []
    assert tuple(lib("/ip/hotspot/active/print")) == ()
    assert len(ros.get_resource("/ip/hotspot").get()) == 1  # non-empty prints are unchanged


# --- hotspot users --------------------------------------------------------------------------------

def test_user_add_print_set_remove(router, ros, lib):
    users = ros.get_resource("/ip/hotspot/user")
    response = users.add(name="kmtz4827", password="kmtz4827", profile="1d", limit_uptime="01:00:00",
                         limit_bytes_total="0", comment="vc-417-06.15.24-momo8F3K")
    assert response.done_message == {"ret": "*1"}
    (row,) = users.get(name="kmtz4827")
    assert row == {
        "id": "*1", "name": "kmtz4827", "password": "kmtz4827", "profile": "1d", "server": "all",
        "limit-uptime": "1h", "limit-bytes-total": "0", "comment": "vc-417-06.15.24-momo8F3K",
        "uptime": "0s", "bytes-in": "0", "bytes-out": "0", "packets-in": "0", "packets-out": "0",
        "dynamic": "false", "disabled": "false",
    }
    added = lib.path("ip", "hotspot", "user").add(
        name="up1", password="5", server="hotspot1", email="a@b.c", **{"mac-address": "aa:bb:cc:dd:ee:ff"}
    )
    assert added == "*2"
    users.set(id="*1", comment="changed", disabled="yes")
    assert router.users()[0]["comment"] == "changed" and router.users()[0]["disabled"] == "true"
    assert router.users()[1]["mac-address"] == "AA:BB:CC:DD:EE:FF" and router.users()[1][".id"] == "*2"
    lib.path("ip", "hotspot", "user").remove("*1", "*2")
    assert router.users() == []


def test_ids_are_hexadecimal(ros):
    users = ros.get_resource("/ip/hotspot/user")
    ids = [users.add(name=f"h{index}").done_message["ret"] for index in range(11)]
    assert ids[8:] == ["*9", "*A", "*B"]
    users.remove(id="*A")
    assert users.add(name="next").done_message["ret"] == "*C"  # ids are never reused


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["/ip/hotspot/user/add", "=name=x", "=profile=nope"], "input does not match any value of profile"),
        (["/ip/hotspot/user/add", "=name=x", "=server=nope"], "input does not match any value of server"),
        (["/ip/hotspot/user/add", "=name=dup"], "failure: already have user with this name for this server"),
        (["/ip/hotspot/user/add", "=name=dup", "=server=hotspot1"],
         "failure: already have user with this name for this server"),
        (["/ip/hotspot/user/add", "=password=x"], MESSAGES["missing_name"]),
        (["/ip/hotspot/user/add", "=name=x", "=colour=red"], "unknown parameter colour"),
        (["/ip/hotspot/user/add", "=name=x", "=limit-uptime=soon"], "invalid value for argument limit-uptime"),
        (["/ip/hotspot/user/add", "=name=x", "=limit-bytes-total=1G"], "invalid value for argument limit-bytes-total"),
        (["/ip/hotspot/user/set", "=.id=*99", "=comment=x"], "no such item"),
        (["/ip/hotspot/user/remove", "=.id=*99"], "no such item"),
        (["/ip/hotspot/active/remove", "=.id=*99"], "no such item"),
        (["/ip/hotspot/active/login", "=user=dup", "=password=", "=ip=10.9.9.9"], "no such host"),
        (["/ip/hotspot/active/login", "=user=dup", "=password=bad", "=ip=10.5.50.2"], "invalid username or password"),
        (["/ip/hotspot/active/login", "=user=nobody", "=password=", "=ip=10.5.50.2"], "invalid username or password"),
        (["/ip/hotspot/active/login", "=user=locked", "=password=", "=ip=10.5.50.2"],
         "user locked is not allowed to log in from this MAC address"),
        (["/ip/hotspot/walled-garden/ip/add", "=action=allow"], "input does not match any value of action"),
        (["/ip/nothing/print"], "no such command prefix"),
        (["/ip/hotspot/user/frobnicate"], "no such command or directory (frobnicate)"),
    ],
)
def test_trap_texts(router, lib, words, message):
    router.add_host("10.5.50.2", "aa:aa:aa:aa:aa:02")
    tuple(lib("/ip/hotspot/user/add", name="dup"))
    tuple(lib("/ip/hotspot/user/add", name="locked", **{"mac-address": "11:22:33:44:55:66"}))
    with pytest.raises(TrapError) as trapped:
        tuple(lib.rawCmd(*words))
    assert trapped.value.message == message


def test_server_all_and_named_server_are_valid(ros):
    users = ros.get_resource("/ip/hotspot/user")
    users.add(name="a", server="all")
    users.add(name="b", server="hotspot1")
    assert {u["server"] for u in users.get()} == {"all", "hotspot1"}


# --- hotspot menus ------------------------------------------------------------------------------

def test_seeded_hotspot_menus(ros):
    (server,) = ros.get_resource("/ip/hotspot").get()
    assert {k: server[k] for k in ("name", "interface", "profile", "address-pool", "disabled")} == {
        "name": "hotspot1", "interface": "bridge-hotspot", "profile": "hsprof1",
        "address-pool": "hs-pool-1", "disabled": "false",
    }
    (profile,) = ros.get_resource("/ip/hotspot/profile").get()
    assert (profile["name"], profile["dns-name"], profile["login-by"], profile["hotspot-address"]) == (
        "hsprof1", "wifi.net", "cookie,http-chap", "10.5.50.1")
    profiles = {p["name"]: p for p in ros.get_resource("/ip/hotspot/user/profile").get()}
    assert list(profiles) == ["default", "1h", "1d", "1w", "illimite"]
    assert "on-login" not in profiles["default"]
    assert profiles["1h"]["on-login"].startswith(':put (",rem,200,1h,0,,Disable,"); {')
    assert profiles["1d"]["on-login"].startswith(':put (",rem,500,1d,0,,Disable,"); {')
    assert profiles["1w"]["on-login"].startswith(':put (",ntfc,2000,1w,2500,,Enable,"); {')
    assert profiles["illimite"]["on-login"] == ':put (",,1000,,,noexp,Disable,")'
    assert len(profiles["1w"]["on-login"]) > 128
    assert all(p["shared-users"] == "1" for p in profiles.values())
    assert profiles["1d"]["rate-limit"] == "1M/2M"


def test_state_helpers(router, ros):
    router.add_server_profile("pap", dns_name="login.net", login_by="cookie,http-pap")
    router.add_server("hotspot2", profile="pap", interface="ether5")
    router.add_user_profile("2h", ':put (",rem,300,2h,0,,Disable,")', shared_users=2, rate_limit="2M/2M")
    router.add_host("10.5.50.7", "aa:bb:cc:00:00:07")
    assert ros.get_resource("/ip/hotspot/profile").get(name="pap")[0]["login-by"] == "cookie,http-pap"
    assert ros.get_resource("/ip/hotspot").get(name="hotspot2")[0]["interface"] == "ether5"
    assert ros.get_resource("/ip/hotspot/user/profile").get(name="2h")[0]["shared-users"] == "2"
    (host,) = ros.get_resource("/ip/hotspot/host").get()
    assert (host["address"], host["mac-address"], host["server"], host["authorized"]) == (
        "10.5.50.7", "AA:BB:CC:00:00:07", "hotspot1", "false")


def test_active_login_print_remove(router, ros):
    router.add_host("10.5.50.20", "aa:bb:cc:dd:ee:20")
    ros.get_resource("/ip/hotspot/user").add(name="u20", password="p20", profile="1d")
    active = ros.get_resource("/ip/hotspot/active")
    active.call("login", {"user": "u20", "password": "p20", "ip": "10.5.50.20", "mac-address": "aa:bb:cc:dd:ee:20"})
    (row,) = active.get()
    assert {k: row[k] for k in ("user", "address", "mac-address", "server", "login-by", "uptime")} == {
        "user": "u20", "address": "10.5.50.20", "mac-address": "AA:BB:CC:DD:EE:20",
        "server": "hotspot1", "login-by": "api", "uptime": "0s",
    }
    assert router.active()[0][".id"] == row["id"]
    assert ros.get_resource("/ip/hotspot/host").get()[0]["authorized"] == "true"
    router.add_host("10.5.50.21", "aa:bb:cc:dd:ee:21")
    with pytest.raises(RouterOsApiCommunicationError) as caught:  # shared-users=1
        active.call("login", {"user": "u20", "password": "p20", "ip": "10.5.50.21"})
    assert caught.value.original_message == b"no more sessions are allowed for user u20"
    active.remove(id=row["id"])
    assert active.get() == []
    assert ros.get_resource("/ip/hotspot/host").get(address="10.5.50.20")[0]["authorized"] == "false"


@pytest.mark.parametrize(
    ("version", "today", "comment", "owner"),
    [
        ("6.49.10 (long-term)", "jun/15/2024", "jun/22/2024 10:15:30", "jun2024"),
        ("7.16 (stable)", "2024-06-15", "2024-06-22 10:15:30", "062024"),
    ],
)
def test_mikhmon_on_login_knob(router, ros, version, today, comment, owner):
    router.version = version
    router.clock = datetime(2024, 6, 15, 10, 15, 30)
    router.add_host("10.5.50.30", "aa:bb:cc:dd:ee:30")
    users = ros.get_resource("/ip/hotspot/user")
    users.add(name="w1", password="w1", profile="1w", comment="vc-417-06.15.24-x")
    users.add(name="other", password="o", profile="1w", comment="MOMO-1")
    active = ros.get_resource("/ip/hotspot/active")
    active.call("login", {"user": "other", "password": "o", "ip": "10.5.50.30"})
    assert users.get(name="other")[0]["comment"] == "MOMO-1"  # off by default
    router.mikhmon_on_login = True
    active.call("login", {"user": "other", "password": "o", "ip": "10.5.50.30"})
    assert users.get(name="other")[0]["comment"] == "MOMO-1"  # Mikhmon only dates vc/up comments
    active.call("login", {"user": "w1", "password": "w1", "ip": "10.5.50.30"})
    (user,) = users.get(name="w1")
    assert user["comment"] == comment and user["mac-address"] == "AA:BB:CC:DD:EE:30"  # 1w locks the MAC
    (sale,) = ros.get_resource("/system/script").get(comment="mikhmon")
    fields = [today, "10:15:30", "w1", "2000", "10.5.50.30", "AA:BB:CC:DD:EE:30", "1w", "1w", "vc-417-06.15.24-x"]
    assert sale["name"] == "-|-".join(fields)
    assert (sale["owner"], sale["source"]) == (owner, today)


# --- system menus -------------------------------------------------------------------------------

def test_version_switch_changes_clock_format(router, ros):
    clock = ros.get_resource("/system/clock")
    assert re.fullmatch(r"[a-z]{3}/\d\d/\d{4}", clock.get()[0]["date"])
    router.version = "7.16 (stable)"
    (row,) = clock.get()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", row["date"]) and re.fullmatch(r"\d\d:\d\d:\d\d", row["time"])
    assert row["time-zone-name"] == "Africa/Porto-Novo"
    router.version = "7.9.2 (stable)"
    assert re.fullmatch(r"[a-z]{3}/\d\d/\d{4}", clock.get()[0]["date"])
    assert ros.get_resource("/system/resource").get()[0]["version"] == "7.9.2 (stable)"


def test_resource_and_identity(ros, lib):
    (resource,) = ros.get_resource("/system/resource").get()
    for key in ("uptime", "board-name", "cpu-load", "free-memory", "total-memory", "architecture-name", "platform"):
        assert resource[key]
    assert resource["version"] == "6.49.10 (long-term)"
    (resource,) = lib("/system/resource/print")
    assert isinstance(resource["free-memory"], int)  # librouteros casts digit strings: they are plain digits


def test_script_print_filters(router, ros):
    for date, owner in (("jun/15/2024", "jun2024"), ("jul/01/2024", "jul2024")):
        router.add_script(f"{date}-|-10:00:00-|-a-|-500-|-10.5.50.2-|-AA-|-1d-|-1d-|-vc-1", date, owner, "mikhmon")
    router.add_script("#pkg#hotspot1#vc#8##lower#1d#0#0##1d#500_0#Disable", comment="QuickPrintMikhmon")
    scripts = ros.get_resource("/system/script")
    assert len(scripts.get(comment="mikhmon")) == 2
    assert [s["name"][:11] for s in scripts.get(comment="mikhmon", owner="jul2024")] == ["jul/01/2024"]
    assert len(scripts.get(source="jun/15/2024")) == 1
    assert scripts.get(comment="QuickPrintMikhmon")[0]["owner"] == "admin"


def test_walled_garden_ip(ros):
    garden = ros.get_resource("/ip/hotspot/walled-garden/ip")
    assert garden.add(action="accept", dst_host="checkout.fedapay.com").done_message == {"ret": "*1"}
    assert garden.get()[0]["dst-host"] == "checkout.fedapay.com"


# --- fault knobs --------------------------------------------------------------------------------

def test_latency_delays_replies(router, raw):
    router.latency = 0.2
    started = time.monotonic()
    raw.command("/system/identity/print")
    assert time.monotonic() - started >= 0.2


def test_hang_reads_but_never_answers(router, raw):
    router.mode = "hang"
    raw.sock.settimeout(0.3)
    raw.send("/system/identity/print", ".tag=h")
    with pytest.raises(TimeoutError):
        raw.sentence()
    assert router.received[-1] == ["/system/identity/print", ".tag=h"]


def test_drop_cuts_one_reply_mid_sentence(router, raw):
    router.mode = "drop"
    before = len(raw.received)
    raw.send("/system/identity/print")
    with pytest.raises(ConnectionError):
        raw.reply()
    assert 0 < len(raw.received) - before < len("!re=name=Kiosque-Sandbox")  # part of the first sentence
    assert router.mode == "normal"
    again = Raw(router).login()
    assert again.command("/system/identity/print")[0] == ["!re", "=name=Kiosque-Sandbox"]
    again.close()


def test_refuse_closes_sessions_and_port_then_reopens_it(router, raw):
    port = router.port
    router.mode = "refuse"
    assert raw.at_eof()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((router.host, port), timeout=2)
    router.mode = "normal"
    assert router.port == port
    Raw(router).login().close()
    assert router.connections == 2  # refused attempts never reached the sandbox


# --- command line -------------------------------------------------------------------------------

def test_command_line_serves(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Run from elsewhere with this interpreter's import path, so the child finds the same package.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox.routeros", "--port", str(port), "--user", "owner",
         "--password", "pw", "--version", "7.16 (stable)"],
        stdout=subprocess.PIPE, text=True, cwd=tmp_path, env=env,
    )
    try:
        assert process.stdout.readline() == f"Sandbox router listening on 127.0.0.1:{port} (user owner)\n"
        api = librouteros.connect("127.0.0.1", "owner", "pw", port=port, timeout=5)
        assert tuple(api("/system/resource/print"))[0]["version"] == "7.16 (stable)"
        api.close()
    finally:
        process.terminate()
        process.wait(timeout=5)
