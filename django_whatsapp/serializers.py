"""Parsing of status callbacks. The provider does not document the callback's body, so both the
plain ``{"message_id": N, "status": S}`` shape and Meta's status webhook shape are understood."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import QueryDict
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from .models import PROVIDER_CODES, normalize_status

MAX_PROVIDER_ID = 2**63 - 1
MAX_REPORTS = 20


class ProviderIdField(serializers.Field):
    default_error_messages = {
        "invalid": _("message_id must be a positive whole number."),
    }

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, str) and data.strip().isascii() and data.strip().isdigit():
            data = int(data.strip()) if len(data.strip()) <= 19 else -1
        if not isinstance(data, int) or not 0 < data <= MAX_PROVIDER_ID:
            self.fail("invalid")
        return int(data)

    def to_representation(self, value: int) -> int:
        return value


class StatusField(serializers.Field):
    default_error_messages = {
        "invalid": _("status must be a provider status code (0-7) or name: %(reason)s."),
        "not_reported": _("%(status)s is not a status the gateway reports."),
    }

    def to_internal_value(self, data: Any) -> str:
        try:
            status = normalize_status(data)
        except ValueError as error:
            self.fail("invalid", reason=str(error))
        if status not in PROVIDER_CODES:
            self.fail("not_reported", status=status)
        return status

    def to_representation(self, value: str) -> str:
        return value


class ReportSerializer(serializers.Serializer):
    """One status report: ``message_id`` (optional, the signed URL names the message) and
    ``status`` (a provider code such as ``1`` or a name such as ``"delivered"``/``"read"``)."""

    message_id = ProviderIdField(required=False, allow_null=True)
    status = StatusField()


def _flat(data: Any) -> Any:
    if isinstance(data, QueryDict):
        return {key: data.get(key) for key in data}
    return data


def _meta_statuses(data: Mapping[str, Any]) -> list[Any] | None:
    """The ``statuses`` list of a Meta-shaped webhook, at the top or under entry/changes/value."""
    if "statuses" in data:
        return data["statuses"] if isinstance(data["statuses"], list) else [data["statuses"]]
    entries = data.get("entry")
    if not isinstance(entries, list):
        return None
    found: list[Any] = []
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else []:
            value = change.get("value") if isinstance(change, dict) else None
            if isinstance(value, dict) and isinstance(value.get("statuses"), list):
                found.extend(value["statuses"])
    return found


def parse_reports(data: Any) -> list[dict[str, Any]]:
    """The reports in a callback body, validated; raises ``serializers.ValidationError``."""
    data = _flat(data)
    if not isinstance(data, Mapping):
        raise serializers.ValidationError({"body": [_("Expected a JSON object or form fields.")]})
    statuses = _meta_statuses(data)
    if statuses is None:
        items: list[Any] = [data]
    else:
        if not statuses:
            raise serializers.ValidationError({"statuses": [_("No status report in the body.")]})
        if len(statuses) > MAX_REPORTS:
            raise serializers.ValidationError({"statuses": [_("Too many reports in one body.")]})
        # Meta's ids are its own strings: the signed URL names the message, so they are not used.
        items = [
            {"status": item.get("status")} if isinstance(item, dict) else item for item in statuses
        ]
    reports = []
    for item in items:
        serializer = ReportSerializer(data=item)
        serializer.is_valid(raise_exception=True)
        reports.append(dict(serializer.validated_data))
    return reports
