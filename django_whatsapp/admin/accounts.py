"""The account on the admin's screens: a column, a filter and a choice on compose, "Send to
many" and "Add campaign", shown only when ``ACCOUNTS`` configures more than the default account.
The sender follows the chosen account: a sender left empty is the account's own, which the
sender's input shows as its placeholder (``compose.js`` changes it with the account)."""

from __future__ import annotations

import json

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..conf import get_settings
from ..models import AccountState
from .dates import short_when


def several() -> bool:
    """Whether more than one account is configured."""
    return len(get_settings().accounts) > 1


def senders() -> dict[str, str]:
    """Each account's own sender (``DEFAULT_SOURCE_ADDR``), by name."""
    return {name: get_settings(name).DEFAULT_SOURCE_ADDR or "" for name in get_settings().accounts}


def default_sender() -> str:
    return get_settings().DEFAULT_SOURCE_ADDR or ""


def account_field() -> forms.ChoiceField:
    """A choice of the configured accounts, the default first; the page's script reads each
    account's sender from it."""
    return forms.ChoiceField(
        label=gettext_lazy("Account"),
        choices=[(name, name) for name in get_settings().accounts],
        initial=get_settings().account,
        help_text=gettext_lazy(
            "The WhatsApp account the message goes out through, with its own sender."
        ),
        widget=forms.Select(attrs={"data-wa-senders": json.dumps(senders())}),
    )


def describe_state(state: AccountState | None) -> str | None:
    """What holds an account's sends, in words: "Paused: the balance is empty (since 10:42)."
    or "Waiting for the gateway since 10:42, next try 10:45: ...". ``None`` when nothing does."""
    if state is None:
        return None
    if state.held_since is not None:
        return _("Paused: %(reason)s (since %(time)s).") % {
            "reason": state.held_reason or _("the gateway refused the account"),
            "time": short_when(state.held_since),
        }
    if state.waiting_since is not None:
        notice = _("Waiting for the gateway since %(time)s, next try %(next)s") % {
            "time": short_when(state.waiting_since),
            "next": short_when(state.next_try_at),
        }
        return f"{notice}: {state.wait_reason}." if state.wait_reason else f"{notice}."
    return None


def state_notice(account: str) -> str | None:
    """:func:`describe_state` of the account named ``account``, named when there are several."""
    notice = describe_state(AccountState.objects.filter(account=account).first())
    if notice is None or not several():
        return notice
    return _("Account %(account)s: %(notice)s") % {"account": account, "notice": notice}


def states() -> dict[str, AccountState]:
    """Every account's state that holds or delays something, by name (one query)."""
    return {state.account: state for state in AccountState.objects.all()}
