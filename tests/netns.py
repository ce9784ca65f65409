"""Network namespaces for tunnel tests: made by the test, joined by veth pairs, always removed.

Names are unique per run (`kq<6 hex>`), so parallel or interrupted runs never collide with
each other, and only documentation addresses (RFC 5737) are used inside them. Needs
CAP_SYS_ADMIN and CAP_NET_ADMIN (root), `ip` (iproute2), `wg` (wireguard-tools), and either
the kernel's WireGuard or wireguard-go with /dev/net/tun.

Cleanup deletes the namespace's interfaces (wireguard-go exits when its interface goes), ends
the processes still running inside the namespace (the test started them: the sandbox router,
wireguard-go) by their pid, then deletes the namespace.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from portal.wireguard.command import Runner
from portal.wireguard.errors import WireGuardError
from portal.wireguard.interface import create_interface

TIMEOUT = 15.0
CLONE_NEWNET = 0x40000000  # setns(2): join a network namespace
_libc = ctypes.CDLL(None, use_errno=True)


def _ip(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *argv], capture_output=True, text=True, timeout=TIMEOUT, check=check)


@dataclass
class Namespace:
    name: str
    tag: str  # short, unique per run: used in interface names (15 characters at most)
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def runner(self) -> Runner:
        return Runner(prefix=("ip", "netns", "exec", self.name), timeout=TIMEOUT)

    def run(self, argv: Sequence[str], *, timeout: float = TIMEOUT, check: bool = True,
            input: str | None = None, **kwargs) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ip", "netns", "exec", self.name, *argv], capture_output=True, text=True,
                              timeout=timeout, check=check, input=input, **kwargs)

    def popen(self, argv: Sequence[str], **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kwargs)
        self.processes.append(process)
        return process

    def interface(self, suffix: str) -> str:
        name = f"{self.tag}{suffix}"
        assert len(name) <= 15, name
        return name

    def pids(self) -> list[int]:
        done = _ip("netns", "pids", self.name, check=False)
        return [int(word) for word in done.stdout.split() if word.isdigit()]


class Namespaces:
    """A set of namespaces for one test; use as a context manager (cleanup is guaranteed)."""

    def __init__(self) -> None:
        self.run_id = secrets.token_hex(3)
        self.namespaces: list[Namespace] = []
        self._links = 0

    def add(self, role: str) -> Namespace:
        assert role.isalnum() and len(role) <= 3, role
        namespace = Namespace(name=f"kq{self.run_id}-{role}", tag=f"kq{self.run_id}{role[0]}")
        _ip("netns", "add", namespace.name)
        self.namespaces.append(namespace)
        namespace.run(["ip", "link", "set", "lo", "up"])
        return namespace

    def link(self, a: Namespace, a_address: str, b: Namespace, b_address: str) -> tuple[str, str]:
        """A veth pair between `a` and `b`, addressed and up; returns the two interface names."""
        self._links += 1
        a_name, b_name = f"kq{self.run_id}v{self._links}a", f"kq{self.run_id}v{self._links}b"
        _ip("link", "add", a_name, "netns", a.name, "type", "veth", "peer", "name", b_name, "netns", b.name)
        for namespace, name, address in ((a, a_name, a_address), (b, b_name, b_address)):
            namespace.run(["ip", "addr", "add", address, "dev", name])
            namespace.run(["ip", "link", "set", name, "up"])
        return a_name, b_name

    def cleanup(self) -> None:
        for namespace in reversed(self.namespaces):
            _remove(namespace)
        self.namespaces.clear()

    def __enter__(self) -> Namespaces:
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()


@contextmanager
def entered(namespace: Namespace) -> Iterator[None]:
    """The calling thread inside `namespace`, back in its own afterwards.

    setns(2) moves only the calling thread: the sockets it opens meanwhile, and the threads and
    processes it starts, live in `namespace` (a server started here keeps serving there).
    """
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{namespace.name}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"setns: {os.strerror(error)}")


def _remove(namespace: Namespace) -> None:
    links = namespace.run(["ip", "-o", "link", "show"], check=False).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0] if ":" in line else ""
        if name and name != "lo":
            namespace.run(["ip", "link", "del", name], check=False)
    for process in namespace.processes:  # what the test started here, through `ip netns exec`
        if process.poll() is None:
            process.terminate()
    deadline = time.monotonic() + 5
    for process in namespace.processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
    for attempt in range(50):  # detached ones (wireguard-go) left in the namespace
        pids = namespace.pids()
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM if attempt < 25 else signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    _ip("netns", "del", namespace.name, check=False)


_probe_result: str | None | bool = False  # False: not probed yet


def unavailable_reason() -> str | None:
    """Why namespace tunnel tests cannot run here (None when they can). Probed once per run."""
    global _probe_result
    if _probe_result is not False:
        return _probe_result  # type: ignore[return-value]
    reason = None
    missing = [tool for tool in ("ip", "wg") if shutil.which(tool) is None]
    if missing:
        reason = f"missing {', '.join(missing)} (apt-get install iproute2 wireguard-tools)"
    else:
        try:
            with Namespaces() as spaces:
                probe = spaces.add("prb")
                create_interface(probe.runner, probe.interface("wg"))
        except subprocess.CalledProcessError as exc:
            reason = f"cannot create a network namespace ({' '.join(exc.cmd[:3])}: {exc.stderr.strip()})"
        except (WireGuardError, OSError, subprocess.SubprocessError) as exc:
            reason = f"cannot create a WireGuard interface in a namespace (kernel module or wireguard-go): {exc}"
    _probe_result = reason
    return reason
