"""Writing values into RouterOS scripts safely: string literals, host names, addresses, and the
API service's allowed addresses. Every value the router kit (setup_kit, tunnel_script) writes
goes through here, or is a validated token (a number, a policy or login-by name).

Syntax: https://help.mikrotik.com/docs/display/ROS/Scripting; the rules Kiosque follows are in
docs/routeros.md#script-syntax-rules and #restricting-the-api-service.
"""

import ipaddress
import re
import unicodedata

from flask_babel import gettext as _

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(?:\.{_LABEL})*\Z")
_ESCAPED = frozenset('\\"$?')  # `$` starts a variable, `?` asks the console for help


class KitError(ValueError):
    """The kit cannot be made or used as asked; the message says why, in the owner's words."""


class ScriptValueError(KitError):
    """A value cannot be written safely into a RouterOS script."""


def script_string(value: str) -> str:
    """Quote `value` as a RouterOS string literal; control characters are refused.

    Backslash, double quote, `$` and `?` are escaped; anything beyond ASCII is written as the
    `\\XX` escapes of its UTF-8 bytes, which the console reads the same whatever its charset.
    """
    out = []
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs"):
            shown = value.encode("unicode_escape").decode()
            raise ScriptValueError(_("Caractère de contrôle refusé dans « %(value)s ».", value=shown))
        if char in _ESCAPED:
            out.append("\\" + char)
        elif char.isascii():
            out.append(char)
        else:
            out.extend(f"\\{byte:02X}" for byte in char.encode())
    return '"' + "".join(out) + '"'


def hostname(value: str) -> str:
    """A DNS name, lower-cased, or ScriptValueError: no quote, space or separator can pass."""
    host = value.strip().rstrip(".").lower()
    if not _HOSTNAME.match(host):
        raise ScriptValueError(_("« %(value)s » n'est pas un nom d'hôte.", value=value))
    return host


def address_prefix(value: str) -> str:
    """An IP address or network, as RouterOS writes it (a single address gets /32 or /128)."""
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError:
        raise ScriptValueError(_("« %(value)s » n'est pas une adresse IP.", value=value)) from None


def allow_on_service(service: str, prefix: str, *, restrict_open: bool) -> str:
    """One line adding `prefix` to the API service's allowed addresses, keeping those already there.

    An empty list means open to all: it stays open, unless `restrict_open` (then it becomes
    `prefix` alone). The prefix is looked for first, so running the line twice adds it once.
    `prefix` is a checked address (`address_prefix`), written as an IP prefix, not a string.
    """
    read = f"{{:local kqAllowed [/ip service get {service} address]; "
    missing = f'[:typeof [:find $kqAllowed {prefix}]] = "nil"'
    append = f"/ip service set {service} address=($kqAllowed, {prefix})"
    if restrict_open:
        return (read + f":if ([:len $kqAllowed] = 0) do={{/ip service set {service} address={prefix}}} "
                f"else={{:if ({missing}) do={{{append}}}}}}}")
    return read + f":if ([:len $kqAllowed] > 0 and {missing}) do={{{append}}}}}"
