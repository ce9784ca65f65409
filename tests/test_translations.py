"""The English catalogue: complete, not fuzzy, placeholders intact, and in step with the code.

Messages are extracted the way `make translations` does (`pybabel extract -F babel.cfg -k _l -k N_ .`),
so a French string added to the code or templates without `make translations` and an English
translation fails here rather than showing up in French on the English site.
"""

import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "portal" / "translations" / "en" / "LC_MESSAGES" / "messages.po"
# The Makefile's `translations` target passes `-k _l` (flask_babel.lazy_gettext) and `-k N_` (the
# payment adapters' marker) on top of the defaults.
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "N_": None}
PLACEHOLDER = re.compile(r"%\([^)]*\)[#0 +-]*\d*(?:\.\d+)?[a-zA-Z%]")


@pytest.fixture(scope="module")
def catalogue():
    with CATALOGUE.open("rb") as f:
        return read_po(f, locale="en")


def _messages(catalogue):
    """Every real message (not the header), obsolete ones excluded as read_po does."""
    return [m for m in catalogue if m.id]


def _strings(value):
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _show(message):
    return " | ".join(_strings(message.id))


def test_catalogue_is_not_empty(catalogue):
    assert _messages(catalogue), f"no messages in {CATALOGUE.relative_to(ROOT)}"


def test_every_message_is_translated(catalogue):
    untranslated = [_show(m) for m in _messages(catalogue)
                    if not all(s and s.strip() for s in _strings(m.string))]
    assert not untranslated, "untranslated messages:\n" + "\n".join(untranslated)


def test_nothing_is_fuzzy(catalogue):
    # A fuzzy header makes `pybabel compile` (without --use-fuzzy) skip the whole catalogue.
    assert not catalogue.fuzzy, "the catalogue header is marked fuzzy"
    fuzzy = [_show(m) for m in _messages(catalogue) if m.fuzzy]
    assert not fuzzy, "fuzzy messages:\n" + "\n".join(fuzzy)


def test_placeholders_match(catalogue):
    wrong = []
    for m in _messages(catalogue):
        expected = {p for s in _strings(m.id) for p in PLACEHOLDER.findall(s)}
        for s in _strings(m.string):
            found = set(PLACEHOLDER.findall(s or ""))
            if s and found != expected:
                wrong.append(f"{_show(m)!r}: msgid has {sorted(expected)}, msgstr {s!r} has {sorted(found)}")
    assert not wrong, "placeholders differ between msgid and msgstr:\n" + "\n".join(wrong)


def test_catalogue_is_up_to_date_with_the_code(catalogue):
    with (ROOT / "babel.cfg").open(encoding="utf-8") as f:
        method_map, options_map = parse_mapping_cfg(f, str(ROOT / "babel.cfg"))
    missing = {}
    for filename, lineno, message, _comments, context in extract_from_dir(
            str(ROOT), method_map, options_map, keywords=KEYWORDS):
        msgid = message[0] if isinstance(message, (tuple, list)) else message
        if not msgid:
            continue
        if catalogue.get(msgid, context=context) is None:
            missing.setdefault((context, msgid), f"{filename}:{lineno}")
    assert not missing, (
        f"{len(missing)} message(s) in the code are missing from {CATALOGUE.relative_to(ROOT)}; "
        "run `make translations` and translate them:\n"
        + "\n".join(f"  {where}: {msgid!r}" + (f" (context {context!r})" if context else "")
                    for (context, msgid), where in sorted(missing.items(), key=lambda kv: kv[1]))
    )
