"""Running `ip`, `wg`, `wireguard-go` and `sysctl`: a timeout on every call, typed errors.

A `Runner` may carry a prefix run before every command: ``("ip", "netns", "exec", "hub")``
runs everything inside a network namespace (the tests do that), ``()`` runs on the host.
Arguments are never given to a shell. No private key is ever an argument: keys go to `wg`
through a file only its owner can read (see `interface.set_private_key`).
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from portal.wireguard.errors import CommandFailed, CommandTimeout, PermissionDenied, ToolMissing
from portal.wireguard.keys import redact_keys

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
DETAIL_CHARS = 300
_PERMISSION_WORDS = ("Operation not permitted", "Permission denied", "must be run as root")


def describe(argv: Sequence[str]) -> str:
    """A short, safe rendering of a command for messages: the first words, keys replaced, then a count."""
    shown = list(argv[:5])
    rest = len(argv) - len(shown)
    return redact_keys(" ".join(shown)) + (f" … (+{rest} arguments)" if rest > 0 else "")


def _detail(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = redact_keys(" / ".join(lines))
    return text[:DETAIL_CHARS] + ("…" if len(text) > DETAIL_CHARS else "")


@dataclass(frozen=True)
class Runner:
    """Runs commands, optionally inside a prefix such as ``ip netns exec NAME``."""

    prefix: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT

    def run(
        self,
        argv: Sequence[str],
        *,
        interface: str | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` (prefixed), return its output; CommandError subclasses when it fails.

        stdin is /dev/null. With ``check=False`` a non-zero exit is returned, not raised
        (the caller reads ``returncode`` and ``stderr``); timeouts and missing tools still raise.
        """
        full = [*self.prefix, *argv]
        limit = self.timeout if timeout is None else timeout
        shown = describe(argv)
        try:
            done = subprocess.run(full, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                  timeout=limit, check=False)
        except subprocess.TimeoutExpired:
            raise CommandTimeout(command=shown, timeout=limit, interface=interface) from None
        except FileNotFoundError:
            raise ToolMissing(command=describe(full), interface=interface) from None
        except PermissionError:
            raise PermissionDenied("not allowed to run", command=describe(full), interface=interface) from None
        if done.returncode != 0:
            detail = _detail(done.stderr)
            log.debug("%s failed with status %s: %s", shown, done.returncode, detail)
            if check:
                if any(word in done.stderr for word in _PERMISSION_WORDS):
                    raise PermissionDenied("needs CAP_NET_ADMIN (run it as the privileged service)",
                                           command=shown, interface=interface, detail=detail)
                if done.returncode == 127 and self.prefix:  # `ip netns exec` could not find the program
                    raise ToolMissing(command=shown, interface=interface)
                raise CommandFailed(command=shown, returncode=done.returncode, interface=interface, detail=detail)
        return done

    def inside(self, *prefix: str) -> Runner:
        """A runner whose commands run inside `prefix` as well (e.g. ``ip netns exec NAME``)."""
        return Runner(prefix=(*self.prefix, *prefix), timeout=self.timeout)
