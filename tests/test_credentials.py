import datetime
import re
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.routeros import credentials
from portal.routeros.credentials import (
    CHARSETS,
    DIGITS,
    Credentials,
    comment,
    generate,
    is_mikhmon_comment,
    sample,
)

LOWER = "abcdefghijkmnprstuvwxyz"
UPPER = "ABCDEFGHJKLMNPRSTUVWXYZ"
VC_DIGITS = {3: 1, 4: 2, 5: 2, 6: 3, 7: 3, 8: 4}

lengths = st.integers(min_value=3, max_value=8)
prefixes = st.text(alphabet="abcXYZ019", max_size=6)
order_codes = st.text(alphabet="abcdefXYZ0123456789", min_size=1, max_size=32)
dates = st.dates(min_value=datetime.date(2000, 1, 1), max_value=datetime.date(2099, 12, 31))


def test_charsets_are_mikhmons_alphabets():
    assert CHARSETS == {
        "lower": LOWER,
        "upper": UPPER,
        "upplow": UPPER + LOWER,
        "mix": DIGITS + LOWER,
        "mix1": DIGITS + UPPER,
        "mix2": DIGITS + UPPER + LOWER,
        "num": DIGITS,
    }
    assert DIGITS == "23456789"
    sizes = {name: len(alphabet) for name, alphabet in CHARSETS.items()}
    assert sizes == {
        "lower": 23, "upper": 23, "upplow": 46, "mix": 31, "mix1": 31, "mix2": 54, "num": 8
    }
    assert not set("01lIoOqQ") & set("".join(CHARSETS.values()))


@given(lengths, st.sampled_from(["lower", "upper", "upplow", "mix", "mix1", "mix2"]), prefixes)
def test_up_mode_name_from_charset_and_digit_password(length, charset, prefix):
    creds = generate("up", length, charset, prefix)
    assert creds.username.startswith(prefix)
    body = creds.username[len(prefix):]
    assert len(body) == length
    assert set(body) <= set(CHARSETS[charset])
    assert len(creds.password) == length
    assert set(creds.password) <= set(DIGITS)
    # Mikhmon would list the user as a voucher otherwise.
    assert creds.password != creds.username


@given(lengths, st.sampled_from(["lower", "upper", "upplow"]), prefixes)
def test_vc_mode_letters_then_trailing_digits(length, charset, prefix):
    creds = generate("vc", length, charset, prefix)
    assert creds.password == creds.username
    body = creds.username[len(prefix):]
    assert creds.username.startswith(prefix) and len(body) == length
    letters, digits = body[: length - VC_DIGITS[length]], body[length - VC_DIGITS[length]:]
    assert set(letters) <= set(CHARSETS[charset])
    assert set(digits) <= set(DIGITS)


@given(lengths, st.sampled_from(["mix", "mix1", "mix2", "num"]), prefixes)
def test_vc_mode_mixed_and_numeric_names(length, charset, prefix):
    creds = generate("vc", length, charset, prefix)
    assert creds.password == creds.username
    body = creds.username[len(prefix):]
    assert creds.username.startswith(prefix) and len(body) == length
    assert set(body) <= set(CHARSETS[charset])


def test_up_mode_redraws_a_password_equal_to_the_name(monkeypatch):
    draws = iter(["234", "234", "567"])
    monkeypatch.setattr(credentials, "_random", lambda alphabet, length: next(draws))
    assert generate("up", 3, "mix") == Credentials("234", "567")


def test_draws_cover_the_alphabet():
    # A broken draw (fixed index, truncated alphabet) would miss characters.
    seen = set("".join(c.username for c in sample("vc", 8, "mix2", n=200)))
    assert seen == set(CHARSETS["mix2"])


def test_credentials_repr_hides_the_password():
    creds = Credentials("kmtz4827", "s3cretpw")
    assert "kmtz4827" in repr(creds)
    assert "s3cretpw" not in repr(creds)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("xx", 6, "lower"), "mode"),
        (("vc", 2, "lower"), "length"),
        (("vc", 9, "lower"), "length"),
        (("vc", 6, "digits"), "character set"),
        (("up", 6, "num"), "num"),
        (("vc", 6, "lower", "toolong"), "prefix"),
        (("vc", 6, "lower", "a&b"), "prefix"),
        (("vc", 6, "lower", "a b"), "prefix"),
        (("vc", 6, "lower", "é"), "prefix"),
        (("vc", 6, "lower", "ab\n"), "prefix"),
    ],
)
def test_generate_rejects_bad_settings(args, message):
    with pytest.raises(ValueError, match=message):
        generate(*args)
    with pytest.raises(ValueError, match=message):
        sample(*args, n=0)


def test_sample_draws_n_distinct_pairs():
    pairs = sample("up", 8, "upplow", "WF", n=5)
    assert len(pairs) == 5
    assert len({p.username for p in pairs}) == 5
    assert all(p.username.startswith("WF") and len(p.password) == 8 for p in pairs)


def test_comment_example():
    text = comment("vc", "momo8F3K", datetime.date(2024, 6, 15))
    assert re.fullmatch(r"vc-[1-9]\d\d-06\.15\.24-momo8F3K", text)


@pytest.mark.parametrize(("draw", "code"), [(0, "100"), (899, "999")])
def test_comment_batch_number_spans_100_to_999(monkeypatch, draw, code):
    def randbelow(bound):
        assert bound == 900
        return draw

    monkeypatch.setattr(credentials.secrets, "randbelow", randbelow)
    assert comment("up", "A1", datetime.date(2025, 1, 2)) == f"up-{code}-01.02.25-A1"


@given(st.sampled_from(["vc", "up"]), order_codes, dates)
def test_comments_have_the_batch_shape_and_are_url_safe(mode, order_code, today):
    text = comment(mode, order_code, today)
    assert re.fullmatch(rf"{mode}-[1-9][0-9]{{2}}-{today:%m\.%d\.%y}-{order_code}", text)
    assert quote(text, safe="") == text
    assert is_mikhmon_comment(text)


@pytest.mark.parametrize(
    ("mode", "code"),
    [("xx", "A1"), ("VC", "A1"), ("vc", ""), ("vc", "a-b"), ("vc", "a b"), ("vc", "a&b"),
     ("vc", "a/b"), ("vc", "a#b"), ("vc", "a?b"), ("vc", "é"), ("vc", "A" * 33)],
)
def test_comment_rejects_bad_mode_or_order_code(mode, code):
    with pytest.raises(ValueError):
        comment(mode, code, datetime.date(2024, 6, 15))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("vc-482-06.15.24-", True),
        ("up-731-06.15.24-promo", True),
        ("vc-417-06.15.24-promo juin", True),
        ("vc-", False),
        ("up-promo", False),
        ("vc-48-06.15.24-", False),
        ("vc-482-13.15.24-x", False),
        ("vc-482-06.15.24", False),
        ("MOMO-482-06.15.24-x", False),
        ("jun/16/2024 10:15:30", False),
        ("", False),
    ],
)
def test_is_mikhmon_comment(text, expected):
    assert is_mikhmon_comment(text) is expected
