import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.routeros.units import (
    MAX_BYTES,
    MAX_DURATION,
    describe_bytes,
    describe_duration,
    format_bytes,
    format_duration,
    normalize_duration,
    parse_bytes,
    parse_duration,
)

# Spelled out here rather than imported, so a wrong constant in the module cannot hide.
MINUTE, HOUR, DAY, WEEK = 60, 3600, 86400, 604800
KIB, MIB, GIB = 1024, 1048576, 1073741824

durations = st.integers(min_value=0, max_value=MAX_DURATION)
byte_counts = st.integers(min_value=0, max_value=MAX_BYTES)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 30 * MINUTE),
        ("1h", HOUR),
        ("1d2h", DAY + 2 * HOUR),
        ("1w", WEEK),
        ("1w2d3h4m5s", WEEK + 2 * DAY + 3 * HOUR + 4 * MINUTE + 5),
        ("1D2H", DAY + 2 * HOUR),
        ("  45M ", 45 * MINUTE),
        ("0", 0),
        ("0s", 0),
        ("", 0),
        ("90", 90),
        ("01:00:00", HOUR),
        ("1d 01:00:00", DAY + HOUR),
        ("1w2d03:04:05", WEEK + 2 * DAY + 3 * HOUR + 4 * MINUTE + 5),
        ("00:00:00", 0),
    ],
)
def test_parse_duration_accepts_mikrotik_forms(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["abc", "1x", "-1h", "1.5h", "h", "1h30", "30m1h", "1h1h", "1 h", "01:60:00", "1:2:3", "1ms",
     "3651d", "999999999999999999", "1" * 50, "\u0661h", "10\u212a", "+5"],
)
def test_parse_duration_rejects_junk(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (30 * MINUTE, "30m"),
        (DAY + 2 * HOUR, "1d2h"),
        (WEEK, "1w"),
        (90, "1m30s"),
        (8 * DAY, "1w1d"),
    ],
)
def test_format_duration_is_compact(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [-1, MAX_DURATION + 1])
def test_format_duration_refuses_out_of_range(seconds):
    with pytest.raises(ValueError):
        format_duration(seconds)


@pytest.mark.parametrize(
    ("text", "normal"), [("01:30:00", "1h30m"), ("60m", "1h"), ("0", "0s"), ("7d", "1w")]
)
def test_normalize_duration(text, normal):
    assert normalize_duration(text) == normal


@given(durations)
def test_duration_round_trips(seconds):
    text = format_duration(seconds)
    assert re.fullmatch(r"0s|(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?", text)
    assert parse_duration(text) == seconds
    assert parse_duration(text.upper()) == seconds
    assert normalize_duration(text) == text


@given(st.text(max_size=30))
def test_parse_duration_only_raises_value_error(text):
    try:
        seconds = parse_duration(text)
    except ValueError:
        return
    assert 0 <= seconds <= MAX_DURATION


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("0", 0),
        ("0M", 0),
        ("", 0),
        ("500M", 500 * MIB),
        ("1G", GIB),
        ("1g", GIB),
        ("10k", 10 * KIB),
        ("10K", 10 * KIB),
        ("123456", 123456),
        (" 2M ", 2 * MIB),
    ],
)
def test_parse_bytes_uses_binary_multiples(text, count):
    assert parse_bytes(text) == count


@pytest.mark.parametrize(
    "text",
    ["abc", "1.5G", "-1M", "M", "10MB", "1T", "1 G", "10\u212a", "\u0663M", "9" * 20,
     "8589934592G"],
)
def test_parse_bytes_rejects_junk(text):
    with pytest.raises(ValueError):
        parse_bytes(text)


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0"),
        (500 * MIB, "500M"),
        (GIB, "1G"),
        (1536 * MIB, "1536M"),
        (10 * KIB, "10K"),
        (1000, "1000"),
    ],
)
def test_format_bytes_is_shortest_exact(count, text):
    assert format_bytes(count) == text


@given(byte_counts)
def test_bytes_round_trip(count):
    text = format_bytes(count)
    assert parse_bytes(text) == count
    assert len(text) <= len(str(count))


@given(st.text(max_size=30))
def test_parse_bytes_only_raises_value_error(text):
    try:
        count = parse_bytes(text)
    except ValueError:
        return
    assert 0 <= count <= MAX_BYTES


@pytest.mark.parametrize(
    ("seconds", "fr", "en"),
    [
        (0, "illimité", "unlimited"),
        (30 * MINUTE, "30 min", "30 min"),
        (HOUR, "1 h", "1 h"),
        (DAY, "1 jour", "1 day"),
        (2 * DAY + 3 * HOUR, "2 jours 3 h", "2 days 3 h"),
        (WEEK, "1 semaine", "1 week"),
        (2 * WEEK + DAY, "2 semaines 1 jour", "2 weeks 1 day"),
        (HOUR + 30 * MINUTE + 5, "1 h 30 min 5 s", "1 h 30 min 5 s"),
    ],
)
def test_describe_duration(seconds, fr, en):
    assert describe_duration(seconds) == fr
    assert describe_duration(seconds, lang="en") == en


@pytest.mark.parametrize(
    ("count", "fr", "en"),
    [
        (0, "illimité", "unlimited"),
        (500 * MIB, "500 Mo", "500 MB"),
        (GIB, "1 Go", "1 GB"),
        (1536 * MIB, "1,5 Go", "1.5 GB"),
        (10 * KIB, "10 Ko", "10 KB"),
        (100, "100 o", "100 B"),
    ],
)
def test_describe_bytes(count, fr, en):
    assert describe_bytes(count) == fr
    assert describe_bytes(count, lang="en") == en


@pytest.mark.parametrize("describe", [describe_duration, describe_bytes])
def test_describe_refuses_unknown_language(describe):
    with pytest.raises(ValueError, match="language"):
        describe(60, lang="de")
