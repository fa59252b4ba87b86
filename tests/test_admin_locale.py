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
    r'^(?:msgctxt ((?:".*"\n)+))?msgid ((?:".*"\n)+)(?:msgid_plural ((?:".*"\n)+))?'
    r'((?:msgstr(?:\[\d\])? (?:".*"\n)+)+)',
    re.MULTILINE,
)
MSGSTR = re.compile(r'^msgstr(?:\[\d\])? ((?:".*"\n)+)', re.MULTILINE)


def join(quoted: str) -> str:
    return "".join(ast.literal_eval(line) for line in quoted.splitlines())


def catalogue(language: str) -> list[tuple[str, str | None, list[str]]]:
    """Every entry's msgid, plural and translations (with a context: ``context\x04msgid``, as
    gettext keys it)."""
    text = (LOCALE / language / "LC_MESSAGES" / "django.po").read_text(encoding="utf-8")
    entries = []
    for match in ENTRY.finditer(text + "\n"):
        msgid = join(match.group(2))
        if not msgid:
            continue  # the header
        if match.group(1):
            msgid = f"{join(match.group(1))}\x04{msgid}"
        plural = join(match.group(3)) if match.group(3) else None
        entries.append((msgid, plural, [join(s) for s in MSGSTR.findall(match.group(4))]))
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
        if "\x04" in msgid:
            assert compiled.pgettext(*msgid.split("\x04")) == forms[0], msgid
        elif plural is None:
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


def nplurals(language: str) -> int:
    text = (LOCALE / language / "LC_MESSAGES" / "django.po").read_text(encoding="utf-8")
    match = re.search(r"Plural-Forms: nplurals=(\d+);", text)
    assert match, f"{language}: no Plural-Forms header"
    return int(match.group(1))


@pytest.mark.parametrize("language", ["ru", "uk"])
def test_no_entry_is_fuzzy_and_every_plural_has_all_its_forms(language: str) -> None:
    text = (LOCALE / language / "LC_MESSAGES" / "django.po").read_text(encoding="utf-8")
    # A fuzzy entry is not compiled: the page would show English.
    assert not re.search(r"^#,.*\bfuzzy\b", text, re.MULTILINE)
    forms = nplurals(language)
    assert forms == 4  # Django's Russian and Ukrainian: one, few, many, and fractions
    plurals = [(msgid, strs) for msgid, plural, strs in catalogue(language) if plural]
    assert len(plurals) >= 15
    for msgid, strs in plurals:
        assert len(strs) == forms, msgid
        assert all(strs), msgid


def source_plurals() -> set[str]:
    """The singular of every ``ngettext`` call in the package and every counted
    ``blocktranslate`` in its templates."""
    package = LOCALE.parent
    found: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", "")).startswith("ngettext")
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(node.args[0].value)
    for path in (package / "templates").rglob("*.html"):
        for body in re.findall(
            r"{% blocktranslate[^%]*\bcount\b[^%]*%}(.*?){% plural %}",
            path.read_text(encoding="utf-8"),
            re.DOTALL,
        ):
            found.add(re.sub(r"{{ (\w+) }}", r"%(\1)s", body))
    return found


@pytest.mark.parametrize("language", ["ru", "uk"])
def test_every_count_the_pages_print_has_its_plural_forms(language: str) -> None:
    plurals = {msgid for msgid, plural, _strs in catalogue(language) if plural}
    wanted = source_plurals()

    assert len(wanted) >= 15
    assert sorted(wanted - plurals) == []


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("ru", ["Отправлен 1 черновик.", "Отправлено 3 черновика.", "Отправлено 5 черновиков."]),
        ("uk", ["Надіслано 1 чернетку.", "Надіслано 3 чернетки.", "Надіслано 5 чернеток."]),
    ],
)
def test_counts_take_the_form_their_number_needs(language: str, expected: list[str]) -> None:
    with (LOCALE / language / "LC_MESSAGES" / "django.mo").open("rb") as mo:
        compiled = gettext.GNUTranslations(mo)
    shown = [
        compiled.ngettext("%(count)d draft sent.", "%(count)d drafts sent.", n) % {"count": n}
        for n in (1, 3, 5)
    ]
    assert shown == expected


@pytest.mark.parametrize(
    ("language", "expected"),
    [("ru", "Отправить пробное сообщение"), ("uk", "Надіслати пробне повідомлення")],
)
def test_the_template_test_link_reads_naturally(language: str, expected: str) -> None:
    translated = {msgid: strs[0] for msgid, _plural, strs in catalogue(language)}
    assert translated["Send a test"] == expected


@pytest.mark.parametrize(
    ("language", "title", "person"), [("ru", "название", "имя"), ("uk", "назва", "ім'я")]
)
def test_a_things_name_is_not_a_persons(language: str, title: str, person: str) -> None:
    """Regression: Django's own catalogue translates "name" as a person's name, and it wins
    over the app's; a template's and a campaign's name take the "title" context."""
    from django.utils import translation

    from django_whatsapp.admin.campaigns import CampaignForm
    from django_whatsapp.models import Campaign, Contact, Template

    with translation.override(language):
        assert str(Template._meta.get_field("name").verbose_name) == title
        assert str(Campaign._meta.get_field("name").verbose_name) == title
        assert str(CampaignForm.base_fields["name"].label) == title
        assert str(Contact._meta.get_field("name").verbose_name) == person
