"""Test-only: play the WireGuard lines of a generated RouterOS script on Linux.

The lines are read as RouterOS would read them (commands, `key=value` arguments, quoted strings
with `\\"`, `\\\\`, `\\$`, `\\?` and `\\XX` escapes, commands nested in `do={…}`), the values of
`/interface wireguard`, `/interface wireguard peers` and `/ip address` are gathered (`set`
after `add`, as on the router), then carried out with `wg` and `ip` in a namespace. What has no
Linux counterpart here (the API service, the firewall filter, the rest of the router script) is
returned untranslated, so a test can check that nothing else was skipped.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from portal.wireguard.interface import create_interface

COMMANDS = ("/interface wireguard peers add", "/interface wireguard peers set", "/interface wireguard add",
            "/interface wireguard set", "/ip address add", "/ip address set")
NO_OP_ON_FRESH_ROUTER = ("/interface wireguard peers remove",)  # nothing to remove on a new router
# The tunnel's other lines, and the rest of the router script (walled garden, API user, http-pap).
UNTRANSLATED = ("/ip service", "/ip firewall filter", "{:local kqAllowed", "{:local kqTop", "/ip hotspot", "/user",
                ":if ([:len [/user", ":put")
_ESCAPES = {'"': '"', "\\": "\\", "$": "$", "?": "?"}


def _string(text: str, start: int) -> tuple[str, int]:
    """The RouterOS string literal starting at text[start] == '"'; returns (value, index after it)."""
    out = bytearray()
    i = start + 1
    while True:
        char = text[i]
        if char == '"':
            return out.decode("utf-8"), i + 1
        if char == "\\":
            following = text[i + 1]
            if following in _ESCAPES:
                out += _ESCAPES[following].encode()
                i += 2
                continue
            out.append(int(text[i + 1:i + 3], 16))
            i += 3
            continue
        out += char.encode()
        i += 1


def _arguments(text: str, start: int) -> dict[str, str]:
    """`key=value` words from text[start] up to the end of the command (`}` or end of line)."""
    values: dict[str, str] = {}
    i = start
    while i < len(text):
        char = text[i]
        if char in " \t":
            i += 1
        elif char == "}":
            break
        elif char == "[":  # a find expression, e.g. [find name="kiosque"]: skip it, strings included
            depth = 0
            while True:
                if text[i] == '"':
                    _, i = _string(text, i)
                    continue
                depth += {"[": 1, "]": -1}.get(text[i], 0)
                i += 1
                if depth == 0:
                    break
        else:
            end = i
            while end < len(text) and text[end] not in "= }":
                end += 1
            key = text[i:end]
            if end < len(text) and text[end] == "=":
                if text[end + 1] == '"':
                    value, i = _string(text, end + 1)
                else:
                    stop = end + 1
                    while stop < len(text) and text[stop] not in " }":
                        stop += 1
                    value, i = text[end + 1:stop], stop
                values[key] = value
            else:
                i = end
    return values


@dataclass(frozen=True)
class RouterTunnel:
    """The router side of the tunnel as the script configures it."""

    interface: str
    private_key: str
    hub_public_key: str
    endpoint: str
    allowed_address: str
    keepalive_seconds: int
    address: str


def read_script(script: str) -> tuple[RouterTunnel, list[str]]:
    """The tunnel the script configures, and the command lines that were not translated."""
    gathered: dict[str, dict[str, str]] = {"wg": {}, "peer": {}, "address": {}}
    untranslated = []
    for line in script.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        found = False
        for command in COMMANDS:
            at = stripped.find(command)
            while at >= 0:
                found = True
                target = ("peer" if "peers" in command else "wg") if "wireguard" in command else "address"
                gathered[target].update(_arguments(stripped, at + len(command)))
                at = stripped.find(command, at + len(command))
        if found:
            continue
        if stripped.startswith(NO_OP_ON_FRESH_ROUTER):
            continue
        if stripped.startswith(UNTRANSLATED):
            untranslated.append(stripped)
            continue
        raise ValueError(f"the translator does not know this line: {stripped[:60]}")
    wg, peer, address = gathered["wg"], gathered["peer"], gathered["address"]
    keepalive = peer["persistent-keepalive"]
    assert keepalive.endswith("s"), keepalive
    assert address["interface"] == wg["name"] == peer["interface"]
    return RouterTunnel(
        interface=wg["name"], private_key=wg["private-key"], hub_public_key=peer["public-key"],
        endpoint=f"{peer['endpoint-address']}:{int(peer['endpoint-port'])}",
        allowed_address=peer["allowed-address"], keepalive_seconds=int(keepalive[:-1]),
        address=address["address"],
    ), untranslated


def apply(namespace, tunnel: RouterTunnel, linux_name: str) -> list[list[str]]:
    """Configure `tunnel` in `namespace` on interface `linux_name`; returns the commands run.

    The private key reaches `wg` through a 0600 file, never the command line.
    """
    create_interface(namespace.runner, linux_name)
    workdir = tempfile.mkdtemp(prefix="kiosque-router-")
    try:
        key_file = Path(workdir) / "router.key"
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, tunnel.private_key.encode() + b"\n")
        os.close(fd)
        commands = [
            ["wg", "set", linux_name, "private-key", str(key_file), "peer", tunnel.hub_public_key,
             "endpoint", tunnel.endpoint, "allowed-ips", tunnel.allowed_address,
             "persistent-keepalive", str(tunnel.keepalive_seconds)],
            ["ip", "addr", "add", tunnel.address, "dev", linux_name],
            ["ip", "link", "set", linux_name, "up"],
        ]
        for argv in commands:
            namespace.run(argv)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return commands
