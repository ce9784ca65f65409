"""Typed errors of the WireGuard adapter.

Every message is built from safe parts only: interface names, public keys, addresses, exit
codes and the tools' own error lines with anything shaped like a key replaced. A private key
never reaches an error text, a log line or a command line.
"""

from __future__ import annotations


class WireGuardError(Exception):
    """Base of every error raised by portal.wireguard."""


class InvalidKey(WireGuardError, ValueError):
    """A value is not a WireGuard key (32 bytes in standard base64)."""


class InvalidNetwork(WireGuardError, ValueError):
    """A tunnel network or address is unusable; the message says why."""


class InvalidEndpoint(WireGuardError, ValueError):
    """The hub's public endpoint (host:port) or a port is unusable; the message says why."""


class AddressPoolExhausted(WireGuardError):
    """Every router address of the tunnel network is taken."""

    def __init__(self, network: str, routers: int) -> None:
        super().__init__(f"tunnel network {network} has no free address left ({routers} routers)")
        self.network = network
        self.routers = routers


class InvalidInterfaceName(WireGuardError, ValueError):
    """An interface name the kernel, `wg` or `sysctl` would not take as is."""


class InsecureKeyFile(WireGuardError):
    """A private key file readable by others than its owner, or not a regular file."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path


class CommandError(WireGuardError):
    """A command (`ip`, `wg`, `wireguard-go`, `sysctl`) failed or could not run.

    ``command`` is a short, safe rendering of the argument list; ``detail`` the tool's
    error output with key-shaped words replaced, at most a few hundred characters.
    """

    def __init__(self, message: str, *, command: str, interface: str | None = None, detail: str = "") -> None:
        where = f" ({interface})" if interface else ""
        text = f"{command}{where}: {message}"
        if detail:
            text += f": {detail}"
        super().__init__(text)
        self.command = command
        self.interface = interface
        self.detail = detail


class CommandFailed(CommandError):
    """The command ran and exited with a non-zero status."""

    def __init__(self, *, command: str, returncode: int, interface: str | None = None, detail: str = "") -> None:
        super().__init__(f"exited with status {returncode}", command=command, interface=interface, detail=detail)
        self.returncode = returncode


class CommandTimeout(CommandError):
    """The command did not finish within its timeout (it was killed)."""

    def __init__(self, *, command: str, timeout: float, interface: str | None = None) -> None:
        super().__init__(f"no result within {timeout:g} s", command=command, interface=interface)
        self.timeout = timeout


class ToolMissing(CommandError):
    """The program is not installed (or not on PATH)."""

    def __init__(self, *, command: str, interface: str | None = None) -> None:
        super().__init__("program not found", command=command, interface=interface)


class PermissionDenied(CommandError):
    """The command needs privileges (CAP_NET_ADMIN) this process does not have."""


class UnexpectedOutput(WireGuardError):
    """A tool printed something this adapter cannot read (never quoted: it may hold a key)."""
