"""Mobile Money phone numbers, read once and written in E.164 ("+2290197000000").

Built on `phonenumbers` (libphonenumber's metadata, which follows each country's numbering
plan) rather than digit rules of our own. Buyers type numbers with spaces, dashes, `+229`,
`00229`, the country code without `+`, or nothing; all become one E.164 string that the
adapters turn into what their API wants. Countries are ISO 3166 codes, lower case, as on
`Network.country`.

Benin moved to ten digits (`01` + the old eight) on 30 November 2024, and buyers still type
the old form: an eight-digit Beninese number gets its `01` before it is checked
(docs/providers.md#phone-numbers).
"""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat, PhoneNumberType

MOBILE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)
BENIN = 229
BENIN_OLD_DIGITS = 8


class InvalidPhone(ValueError):
    """Not a mobile number, read as a number of `country` when it had no country code."""

    def __init__(self, text: str, country: str) -> None:
        super().__init__(f"not a mobile number of {country.upper()}: {text!r}")
        self.country = country


def normalise(text: str, country: str) -> str:
    """The E.164 form of a mobile number; InvalidPhone otherwise.

    National numbers are read as `country`'s; with `country` empty, only international ones pass.
    """
    number = _parse(text, country)
    if number is None or not phonenumbers.is_valid_number(number) or phonenumbers.number_type(number) not in MOBILE_TYPES:
        raise InvalidPhone(text, country)
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def country_of(e164: str) -> str:
    """The country of a number in E.164 form, lower case ("bj")."""
    return (phonenumbers.region_code_for_number(phonenumbers.parse(e164)) or "").lower()


def digits(e164: str) -> str:
    """The international number as digits, no `+`: what FeexPay's API wants ("2290197000000")."""
    return e164.removeprefix("+")


def same_number(typed: str, known: str, country: str) -> bool:
    """Whether a typed number is the known one: the typed one may leave out the known one's country code.

    `known` is read as `country`'s when it has no country code (numbers stored before they were
    normalised); anything that is not a mobile number matches nothing.
    """
    try:
        known_e164 = normalise(known, country)
        return normalise(typed, country_of(known_e164)) == known_e164
    except InvalidPhone:
        return False


def example(country: str) -> str:
    """A mobile number of `country` as its people write it ("01 95 12 34 56"), for hints."""
    number = phonenumbers.example_number_for_type(country.upper(), PhoneNumberType.MOBILE)
    return phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL) if number else ""


def readable(value: str) -> str:
    """A stored number in the international format people read ("+229 01 97 00 00 00"); as it is
    when it is no number (stored before numbers were normalised)."""
    try:
        number = phonenumbers.parse("+" + "".join(ch for ch in value if ch.isdigit()))
    except NumberParseException:
        return value
    return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)


def known_country(country: str) -> bool:
    """Whether `country` is a country code phone numbers can be read for."""
    return phonenumbers.country_code_for_region(country.upper()) != 0


def _parse(text: str, country: str) -> PhoneNumber | None:
    """The number as written, national numbers as `country`'s; None when it is no number at all.

    Digits alone that make no valid national number are tried as an international number
    without its "+" (as providers report payers' numbers: "2250707000000").
    """
    try:
        number = _benin_ten_digits(phonenumbers.parse(text, country.upper()))
    except NumberParseException:
        return None
    bare = text.strip()
    if phonenumbers.is_valid_number(number) or not bare[:1].isdigit() or bare.startswith("0"):
        return number
    try:
        international = _benin_ten_digits(phonenumbers.parse("+" + bare, None))
    except NumberParseException:
        return number
    return international if phonenumbers.is_valid_number(international) else number


def _benin_ten_digits(number: PhoneNumber) -> PhoneNumber:
    """An old eight-digit Beninese number with the "01" every such number gained in November 2024."""
    if number.country_code == BENIN and not number.italian_leading_zero \
            and len(str(number.national_number)) == BENIN_OLD_DIGITS:
        return phonenumbers.parse(f"+{BENIN}01{number.national_number}", None)
    return number
