"""The shipped catalogues: every message translated into Russian and Ukrainian, and the compiled
.mo files in step with the .po sources."""

from __future__ import annotations

import ast
import gettext
import re
from pathlib import Path

import pytest

import django_whatsapp

LOCALE = Path(django_whatsapp.__file__).parent / "locale"
ENTRY = re.compile(
    r'^msgid ((?:".*"\n)+)(?:msgid_plural ((?:".*"\n)+))?((?:msgstr(?:\[\d\])? (?:".*"\n)+)+)',
    re.MULTILINE,
)
MSGSTR = re.compile(r'^msgstr(?:\[\d\])? ((?:".*"\n)+)', re.MULTILINE)


def join(quoted: str) -> str:
    return "".join(ast.literal_eval(line) for line in quoted.splitlines())


def catalogue(language: str) -> list[tuple[str, str | None, list[str]]]:
    text = (LOCALE / language / "LC_MESSAGES" / "django.po").read_text(encoding="utf-8")
    entries = []
    for match in ENTRY.finditer(text + "\n"):
        msgid = join(match.group(1))
        if not msgid:
            continue  # the header
        plural = join(match.group(2)) if match.group(2) else None
        entries.append((msgid, plural, [join(s) for s in MSGSTR.findall(match.group(3))]))
    return entries


@pytest.mark.parametrize("language", ["ru", "uk"])
def test_every_message_is_translated_and_compiled(language: str) -> None:
    entries = catalogue(language)
    assert len(entries) > 150
    untranslated = [msgid for msgid, _plural, forms in entries if not all(forms)]
    assert untranslated == []
    with (LOCALE / language / "LC_MESSAGES" / "django.mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    for msgid, plural, forms in entries:
        if plural is None:
            assert compiled.gettext(msgid) == forms[0], msgid
        else:
            assert compiled.ngettext(msgid, plural, 1) == forms[0], msgid
    # The placeholders survive translation.
    for msgid, _plural, forms in entries:
        names = sorted(re.findall(r"%\((\w+)\)", msgid))
        for form in forms:
            assert sorted(re.findall(r"%\((\w+)\)", form)) == names, (msgid, form)


def test_english_ships_compiled_too() -> None:
    assert (LOCALE / "en" / "LC_MESSAGES" / "django.mo").is_file()
