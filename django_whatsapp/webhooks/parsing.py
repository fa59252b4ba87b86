"""Parsing of status callbacks. The provider does not document the callback's body, so both the
plain ``{"message_id": N, "status": S}`` shape and Meta's status webhook shape are understood."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from typing import IO, Any, NoReturn

from django.conf import settings
from django.http import HttpRequest, QueryDict
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from ..status_rule import PROVIDER_CODES, normalize_status

MAX_PROVIDER_ID = 2**63 - 1
MAX_REPORTS = 20
#: How deeply a kept report may nest (Meta's webhook nests 7 deep).
MAX_DEPTH = 32


class CallbackJSONParser(JSONParser):
    """DRF's JSON parser, answering a body nested deep enough to exhaust the stack with a
    ``ParseError`` instead of letting the ``RecursionError`` through."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(_("JSON parse error - nested too deeply.")) from None


def parse_json_body(request: HttpRequest) -> Any:
    """The JSON body of a request whose ``Content-Type`` is ``application/json``, read exactly as
    DRF's ``request.data`` reads it (the same parser, stream and encoding), without DRF's
    negotiation and request wrapping: the common callback's path. Raises ``ParseError``."""
    encoding = request.encoding or settings.DEFAULT_CHARSET
    stream = io.BytesIO(request.body)  # as DRF: the body, under DATA_UPLOAD_MAX_MEMORY_SIZE
    return _JSON_PARSER.parse(stream, request.content_type, {"encoding": encoding})


class _FilledField(serializers.Field):
    """A field whose error messages use ``%(name)s`` placeholders (the house style for
    translatable text), filled when the error is raised. DRF's own ``fail`` fills ``{name}``
    placeholders only, which left ``%(status)s`` in the answer."""

    def fail(self, key: str, **kwargs: Any) -> NoReturn:
        message = str(self.error_messages[key])
        raise serializers.ValidationError(message % kwargs if kwargs else message, code=key)


_JSON_PARSER = CallbackJSONParser()


class ProviderIdField(_FilledField):
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


class StatusField(_FilledField):
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


def _storable_text(text: str) -> bool:
    """Whether a JSON column stores this string as it is (PostgreSQL refuses NUL characters and
    lone surrogates in ``jsonb``)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _check_storable(value: Any) -> None:
    not_storable = serializers.ValidationError
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise not_storable({"body": [_("The body is nested too deeply.")]})
        if isinstance(item, dict):
            for key, child in item.items():
                if not _storable_text(str(key)):
                    raise not_storable({"body": [_("A key holds a NUL or an invalid character.")]})
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str) and not _storable_text(item):
            raise not_storable({"body": [_("A value holds a NUL or an invalid character.")]})
        elif isinstance(item, float) and not math.isfinite(item):
            raise not_storable({"body": [_("A number is out of range.")]})


def report_payload(data: Any) -> dict[str, Any]:
    """The callback body as it came, to keep on its events: a JSON object as parsed; form or query
    fields as strings, a repeated field as the list of its values (uploaded files are not kept).

    Raises ``serializers.ValidationError`` for what a JSON column cannot keep: nesting deeper than
    ``MAX_DEPTH``, numbers out of range, NUL characters or lone surrogates.
    """
    if isinstance(data, QueryDict):
        payload: dict[str, Any] = {}
        for key, values in data.lists():
            texts = [value for value in values if isinstance(value, str)]
            if texts:
                payload[key] = texts[0] if len(texts) == 1 else texts
    else:
        payload = dict(data)
    _check_storable(payload)
    return payload


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
        report = _valid_report(item)
        if report is None:  # invalid, or a shape the serializer decides: it says why
            serializer = ReportSerializer(data=item)
            serializer.is_valid(raise_exception=True)
            report = dict(serializer.validated_data)
        reports.append(report)
    return reports


_ID_FIELD = ProviderIdField(required=False, allow_null=True)
_STATUS_FIELD = StatusField()


def _valid_report(item: Any) -> dict[str, Any] | None:
    """``ReportSerializer``'s validated data for a plain dict it accepts, by the same fields'
    own conversions but without building a serializer (a tenth of a callback's CPU); ``None``
    for anything else, which the serializer then validates and refuses with its own errors."""
    if type(item) is not dict or item.get("status") is None:
        return None
    report: dict[str, Any] = {}
    try:
        if "message_id" in item:
            given = item["message_id"]
            report["message_id"] = None if given is None else _ID_FIELD.to_internal_value(given)
        report["status"] = _STATUS_FIELD.to_internal_value(item["status"])
    except serializers.ValidationError:
        return None
    return report
