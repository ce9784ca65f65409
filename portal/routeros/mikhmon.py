"""Mikhmon's profile metadata: the header of a user profile's on-login script, and its date trap.

Mikhmon stores a profile's expiry mode, price, validity, selling price and MAC lock in the first
statement of the profile's ``on-login`` script, ``:put (",rem,1000,1d,1500,,Enable,")``, and reads
it back with ``explode(",", on_login)``: [1] expiry mode, [2] price, [3] validity, [4] selling
price, [5] empty (``noexp`` when the mode is None), [6] lock.
"""

import re
from dataclasses import dataclass

from portal.routeros.units import parse_duration

# Expiry modes: remove, notice, remove & record, notice & record; "0" is Mikhmon's "None".
EXPIRY_MODES = ("rem", "ntf", "remc", "ntfc")
NO_EXPIRY = "0"
_NO_EXPIRY_MARK = "noexp"
# Mikhmon locks only on "Enable", so an empty slot reads as unlocked.
_LOCK_VALUES = {"Enable": True, "Disable": False, "": False}

# The header's quoted text. The mikhmon-agent fork writes `:put (",",rem,...,")`: its extra `",`
# shifts Mikhmon's indexes by one, but the fields that follow are the same, so it is read too.
_HEADER = re.compile(r'\s*:put\s*\(\s*"(?:,")?(,[^"]*,)"\s*\)')
_AMOUNT = re.compile(r"[0-9]{0,15}")

# Stock Mikhmon v3 takes year and month from `/system clock get date` by fixed positions of
# `mmm/dd/yyyy`; from RouterOS 7.10 the date reads `yyyy-mm-dd`, so expiry silently stops.
_V6_DATE_PICK = re.compile(r":pick?\s+\$date\s+(?:7\s+11|0\s+3)\b")
# The RouterOS 7 forks (mikhmon-ros7, mikhmon-agent) take the year with `:pick $date 0 4`.
_V7_DATE_PICK = re.compile(r":pick?\s+\$date\s+0\s+4\b")
_VERSION = re.compile(r"\s*([0-9]+)\.([0-9]+)")


@dataclass(frozen=True)
class ProfileMeta:
    """What Mikhmon knows about a user profile; prices are whole currency units."""

    expmode: str
    price: int
    validity: str
    selling_price: int
    lock: bool

    def __post_init__(self) -> None:
        if self.price < 0 or self.selling_price < 0:
            raise ValueError("prices cannot be negative")
        if self.expmode == NO_EXPIRY:
            # Mikhmon's None header has no slot for these.
            if self.validity or self.selling_price:
                raise ValueError("a profile without expiry has no validity or selling price")
        elif self.expmode in EXPIRY_MODES:
            if parse_duration(self.validity) == 0:
                raise ValueError(f"invalid validity: {self.validity!r}")
        else:
            raise ValueError(f"unknown expiry mode: {self.expmode!r}")

    @property
    def sale_price(self) -> int:
        """The price the buyer pays: the selling price when set, as on Mikhmon's vouchers."""
        return self.selling_price or self.price


def parse_on_login(script: str) -> ProfileMeta | None:
    """Read the Mikhmon header of an on-login script; None when it has none or it is unreadable."""
    match = _HEADER.match(script)
    if match is None:
        return None
    fields = match.group(1).split(",")
    if len(fields) != 8:
        return None
    _, expmode, price, validity, selling_price, no_expiry, lock, _ = fields
    if no_expiry == _NO_EXPIRY_MARK and expmode == "":
        expmode = NO_EXPIRY
    amounts_ok = _AMOUNT.fullmatch(price) and _AMOUNT.fullmatch(selling_price)
    if lock not in _LOCK_VALUES or not amounts_ok:
        return None
    try:
        return ProfileMeta(
            expmode, int(price or 0), validity, int(selling_price or 0), _LOCK_VALUES[lock]
        )
    except ValueError:
        return None


def build_on_login_header(meta: ProfileMeta) -> str:
    """Return the header stock Mikhmon writes for ``meta`` (the script's body follows it)."""
    lock = "Enable" if meta.lock else "Disable"
    if meta.expmode == NO_EXPIRY:
        return f':put (",,{meta.price},,,{_NO_EXPIRY_MARK},{lock},")'
    return f':put (",{meta.expmode},{meta.price},{meta.validity},{meta.selling_price},,{lock},")'


def uses_stock_v3_date_parsing(on_login: str) -> bool:
    """Tell whether an on-login script reads dates the RouterOS 6 way, as stock Mikhmon v3 does."""
    return _V6_DATE_PICK.search(on_login) is not None and _V7_DATE_PICK.search(on_login) is None


def version_at_least(version: str, major: int, minor: int) -> bool:
    """Compare a RouterOS version such as ``7.10 (stable)`` or ``6.49.10 (long-term)``.

    Raises ValueError when the text has no ``major.minor``, so "unknown" never passes for "old".
    """
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(f"not a RouterOS version: {version!r}")
    return (int(match.group(1)), int(match.group(2))) >= (major, minor)


def needs_ros7_warning(version: str, on_login: str) -> bool:
    """Tell whether a profile's users will never expire: stock v3 script on RouterOS 7.10 or later.

    An unreadable version (a router not yet contacted) gives no warning: there is nothing to claim.
    """
    if not uses_stock_v3_date_parsing(on_login):
        return False
    try:
        return version_at_least(version, 7, 10)
    except ValueError:
        return False
