"""Opt-out keywords (SPEC 13): compared after Unicode normalisation (NFKC, case folded, format
characters such as zero-width spaces and soft hyphens removed, white space collapsed); the
default lists hold the carriers' common words in English, Spanish, German, French, Portuguese,
Russian and Ukrainian; OPT_OUT_KEYWORDS and OPT_IN_KEYWORDS still replace them."""

from __future__ import annotations

from typing import Any

import pytest

from django_whatsapp import optout
from django_whatsapp.conf import DEFAULTS

OUT, IN = optout.OUT, optout.IN


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("S\u200bTOP", "a zero-width space inside"),
        ("ST\u00adOP", "a soft hyphen inside"),
        ("\ufeffSTOP", "a byte-order mark before"),
        ("STO\u200dP", "a zero-width joiner inside"),
        ("STOP\u2060", "a word joiner after"),
        ("\uff33\uff34\uff2f\uff30", "full width"),
        ("stop\tall", "an inner tab"),
        ("STOP \n  ALL", "an inner new line and spaces"),
        ("  Stop! ", "punctuation and spaces around"),
        ("«СТОП»", "quotes around"),
        ("s\u0074op", "an escape that is a plain letter"),
    ],
)
def test_hidden_and_odd_characters_do_not_hide_a_keyword(text: str, why: str) -> None:
    assert optout.keyword_action(text) == OUT, why


@pytest.mark.parametrize(
    "word",
    [
        # the carriers' words
        "STOP",
        "stopall",
        "Unsubscribe",
        "cancel",
        "END",
        "quit",
        "OptOut",
        "opt-out",
        "revoke",
        # Spanish
        "baja",
        "Cancelar",
        "parar",
        # German
        "Stopp",
        "abmelden",
        "KÜNDIGEN",
        "kündigen",
        # French
        "arrêt",
        "ARRET",
        "désabonner",
        # Portuguese
        "sair",
        "Pare",
        "descadastrar",
        # Russian
        "стоп",
        "Отписаться",
        "отмена",
        # Ukrainian
        "відписатися",
        "СКАСУВАТИ",
    ],
)
def test_the_carriers_opt_out_words_in_seven_languages(word: str) -> None:
    assert optout.keyword_action(word) == OUT


@pytest.mark.parametrize(
    "word",
    ["START", "unstop", "Subscribe", "alta", "Anmelden", "démarrer", "voltar", "старт", "поновити"],
)
def test_the_opt_in_words(word: str) -> None:
    assert optout.keyword_action(word) == IN


@pytest.mark.parametrize(
    "text", ["stop it", "please stop", "", "   ", "\u200b", "stopp!!! now", "s t o p", "STOPS"]
)
def test_a_text_that_only_holds_a_keyword_is_none(text: str) -> None:
    assert optout.keyword_action(text) is None


def test_no_word_is_both_an_opt_out_and_an_opt_in() -> None:
    out = {optout.normalize(w) for w in DEFAULTS["OPT_OUT_KEYWORDS"]}
    into = {optout.normalize(w) for w in DEFAULTS["OPT_IN_KEYWORDS"]}
    assert out.isdisjoint(into)


def test_the_settings_still_replace_the_words(settings: Any) -> None:
    settings.DJANGO_WHATSAPP = {
        **settings.DJANGO_WHATSAPP,
        "OPT_OUT_KEYWORDS": ["HALT", "Schluss\u00adjetzt"],
        "OPT_IN_KEYWORDS": ["AGAIN"],
    }
    assert optout.keyword_action("halt") == OUT
    assert optout.keyword_action("SCHLUSSJETZT") == OUT  # the setting is normalised too
    assert optout.keyword_action("again") == IN
    assert optout.keyword_action("STOP") is None
    assert optout.keyword_action("START") is None


def test_normalize_collapses_and_folds() -> None:
    assert optout.normalize(" \u200bStop\t\u00adAll! ") == "stop all"
