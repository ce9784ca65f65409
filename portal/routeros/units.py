"""MikroTik durations (``1d2h30m``) and byte limits (``500M``), plus buyer-facing descriptions.

Durations are whole seconds and byte counts whole bytes; 0 means "no limit" for both, as it does
for ``limit-uptime`` and ``limit-bytes-total``. An empty string also reads as 0, because an empty
form field or buy-link parameter means "no limit" (Mikhmon itself sends ``0`` for an empty field).
"""

import re
from dataclasses import dataclass

MINUTE = 60
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY
# Anything longer than this is a typo, not a ticket; it also keeps the numbers small.
MAX_DURATION = 3650 * DAY

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
# RouterOS stores byte limits as signed 64-bit integers.
MAX_BYTES = 2**63 - 1

# Longest text worth parsing; stops pathological input before any regex or int() work.
_MAX_TEXT = 40

_DURATION_UNITS = (("w", WEEK), ("d", DAY), ("h", HOUR), ("m", MINUTE), ("s", 1))
# Compact form as RouterOS prints it: units in decreasing order, each at most once.
_COMPACT = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")
# Legacy form (RouterOS 6 output, scheduler intervals): [Nw][Nd][ ]HH:MM:SS.
_CLOCK = re.compile(r"(?:(\d+)w)?(?:(\d+)d)? ?(\d+):([0-5]\d):([0-5]\d)")

_BYTE_SUFFIXES = {"": 1, "k": KIB, "m": MIB, "g": GIB}
_BYTES = re.compile(r"(\d+)([kmg]?)")


def parse_duration(text: str) -> int:
    """Return the number of seconds in a MikroTik duration; ``""`` and ``0`` mean none (0).

    Accepts the compact form (``1w2d3h4m5s``, any subset in that order, case-insensitive), a
    bare number of seconds, and the legacy ``[1w][1d] HH:MM:SS`` form.
    """
    value = _clean(text, "duration")
    if value == "":
        return 0
    if value.isdigit():
        seconds = int(value)
    elif (match := _CLOCK.fullmatch(value)) is not None:
        weeks, days, hours, minutes, secs = (int(g or 0) for g in match.groups())
        seconds = weeks * WEEK + days * DAY + hours * HOUR + minutes * MINUTE + secs
    elif (match := _COMPACT.fullmatch(value)) is not None:
        seconds = sum(
            int(count) * size
            for count, (_, size) in zip(match.groups(), _DURATION_UNITS)
            if count is not None
        )
    else:
        raise ValueError(f"not a duration: {text!r} (examples: 30m, 1h, 1d2h)")
    if seconds > MAX_DURATION:
        raise ValueError("duration is longer than 10 years")
    return seconds


def format_duration(seconds: int) -> str:
    """Return the compact form RouterOS prints: ``1d2h``, ``30m``, and ``0s`` for 0."""
    _check_range(seconds, MAX_DURATION, "duration")
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in _DURATION_UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def normalize_duration(text: str) -> str:
    """Return the canonical compact form of a duration (``"01:30:00"`` gives ``"1h30m"``)."""
    return format_duration(parse_duration(text))


def parse_bytes(text: str) -> int:
    """Return a byte count from ``500M``, ``1G``, ``10k`` or a plain integer (binary multiples).

    ``""``, ``0`` and ``0M`` all mean no limit (0). Suffixes are case-insensitive.
    """
    value = _clean(text, "byte limit")
    if value == "":
        return 0
    match = _BYTES.fullmatch(value)
    if match is None:
        raise ValueError(f"not a byte limit: {text!r} (examples: 500M, 1G, 0)")
    count = int(match.group(1)) * _BYTE_SUFFIXES[match.group(2)]
    if count > MAX_BYTES:
        raise ValueError("byte limit is too large")
    return count


def format_bytes(count: int) -> str:
    """Return the shortest exact form of a byte count (``500M``, ``1G``, ``10K``, ``0``)."""
    _check_range(count, MAX_BYTES, "byte limit")
    for suffix, size in (("G", GIB), ("M", MIB), ("K", KIB)):
        if count and count % size == 0:
            return f"{count // size}{suffix}"
    return str(count)


def _clean(text: str, what: str) -> str:
    """Strip and lower-case ``text``, refusing what no router would accept."""
    value = text.strip()
    if len(value) > _MAX_TEXT:
        raise ValueError(f"{what} is too long")
    # Non-ASCII would otherwise slip through: Arabic-Indic digits are int()-able and the
    # Kelvin sign lower-cases to "k".
    if not value.isascii():
        raise ValueError(f"not a {what}: {text!r}")
    return value.lower()


def _check_range(value: int, maximum: int, what: str) -> None:
    if not 0 <= value <= maximum:
        raise ValueError(f"{what} out of range: {value}")


@dataclass(frozen=True)
class _Vocabulary:
    unlimited: str
    decimal_mark: str
    durations: tuple[tuple[str, str], ...]  # (singular, plural), aligned with _DURATION_UNITS
    byte_units: tuple[str, ...]  # 1, 1024, 1024², ...


# Buyer-facing words; the app wraps these for translation, so only fr and en live here.
_VOCABULARIES = {
    "fr": _Vocabulary(
        unlimited="illimité",
        decimal_mark=",",
        durations=(
            ("semaine", "semaines"), ("jour", "jours"), ("h", "h"), ("min", "min"), ("s", "s")
        ),
        byte_units=("o", "Ko", "Mo", "Go", "To"),
    ),
    "en": _Vocabulary(
        unlimited="unlimited",
        decimal_mark=".",
        durations=(("week", "weeks"), ("day", "days"), ("h", "h"), ("min", "min"), ("s", "s")),
        byte_units=("B", "KB", "MB", "GB", "TB"),
    ),
}


def _vocabulary(lang: str) -> _Vocabulary:
    try:
        return _VOCABULARIES[lang]
    except KeyError:
        raise ValueError(f"unsupported language: {lang!r}") from None


def describe_duration(seconds: int, lang: str = "fr") -> str:
    """Describe a duration for buyers: ``"2 jours 3 h"`` / ``"2 days 3 h"``; 0 is "illimité"."""
    words = _vocabulary(lang)
    _check_range(seconds, MAX_DURATION, "duration")
    if seconds == 0:
        return words.unlimited
    parts = []
    for (_, size), (singular, plural) in zip(_DURATION_UNITS, words.durations):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {singular if count == 1 else plural}")
    return " ".join(parts)


def describe_bytes(count: int, lang: str = "fr") -> str:
    """Describe a byte limit for buyers: ``"1,5 Go"`` / ``"1.5 GB"``; 0 is "illimité"."""
    words = _vocabulary(lang)
    _check_range(count, MAX_BYTES, "byte limit")
    if count == 0:
        return words.unlimited
    units = words.byte_units
    power = 0
    while power < len(units) - 1 and count >= 1024 ** (power + 1):
        power += 1
    # Two decimals are plenty on a price list; trailing zeros go so 1024 MiB reads "1 Go".
    amount = f"{count / 1024**power:.2f}".rstrip("0").rstrip(".")
    return f"{amount.replace('.', words.decimal_mark)} {units[power]}"
