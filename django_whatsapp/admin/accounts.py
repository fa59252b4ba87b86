"""The account on the admin's screens: a column, a filter and a choice on compose and "Send to
many", shown only when ``ACCOUNTS`` configures more than the default account."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from ..conf import get_settings


def several() -> bool:
    """Whether more than one account is configured."""
    return len(get_settings().accounts) > 1


def account_field() -> forms.ChoiceField:
    """A choice of the configured accounts, the default first."""
    return forms.ChoiceField(
        label=_("Account"),
        choices=[(name, name) for name in get_settings().accounts],
        initial=get_settings().account,
        help_text=_("The WhatsApp account the message goes out through."),
    )
