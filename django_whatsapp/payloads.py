"""The request bodies of SPEC section 3, built from a :class:`~django_whatsapp.models.Message`."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from .models import Message, Template, placeholder_number

#: ``{{1}}``-style body placeholders and ``{{header}}``, filled in one pass so that a value
#: that itself contains ``{{...}}`` is never filled again.
_OVERRIDE_PLACEHOLDER_RE = re.compile(r"\{\{\s*(\d+|header)\s*\}\}")


def _fill(value: Any, params: list[str], header: str | None) -> Any:
    """Fill ``{{n}}`` placeholders (and ``{{header}}``) inside a components override; those
    without a value are left as they are."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            key = match.group(1)
            if key == "header":
                return header if header is not None else match.group(0)
            number = placeholder_number(key)
            index = -1 if number is None else number - 1
            return params[index] if 0 <= index < len(params) else match.group(0)

        return _OVERRIDE_PLACEHOLDER_RE.sub(sub, value)
    if isinstance(value, list):
        return [_fill(v, params, header) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, params, header) for k, v in value.items()}
    return value


def template_components(
    template: Template, params: list[str], header: str | None
) -> list[dict[str, Any]]:
    """The ``components`` of the template object: the override filled in, or built from
    the body's placeholders and the header type."""
    if template.components:
        return list(_fill(copy.deepcopy(template.components), params, header))
    components: list[dict[str, Any]] = []
    if template.header_type == Template.HeaderType.TEXT and header:
        components.append({"type": "header", "parameters": [{"type": "text", "text": header}]})
    elif template.header_type == Template.HeaderType.IMAGE and header:
        components.append(
            {"type": "header", "parameters": [{"type": "image", "image": {"link": header}}]}
        )
    if params:
        components.append(
            {"type": "body", "parameters": [{"type": "text", "text": p} for p in params]}
        )
    return components


def template_object(
    template: Template, to: str, params: list[str], header: str | None
) -> dict[str, Any]:
    """The template object that goes, JSON-encoded, into ``template_params``."""
    return {
        "to": to,
        "type": "template",
        "template": {
            "namespace": template.namespace,
            "language": {"policy": template.language_policy, "code": template.language_code},
            "name": template.name,
            "components": template_components(template, params, header),
        },
    }


def message_payload(message: Message, *, callback_url: str | None = None) -> dict[str, Any]:
    """The send request's JSON body for a validated message."""
    payload: dict[str, Any] = {
        "source_addr": message.source_addr,
        # A JSON integer, as in the provider's example; digits with a leading zero stay a
        # string so that none is lost.
        "destination_addr": (
            message.destination_addr
            if message.destination_addr.startswith("0")
            else int(message.destination_addr)
        ),
        "message_type": int(message.message_type),
    }
    if message.message_type == Message.MessageType.TEXT:
        payload["text"] = message.text
    elif message.message_type == Message.MessageType.MEDIA:
        payload["file_url"] = message.file_url
        if message.text:
            payload["text"] = message.text
    elif message.message_type == Message.MessageType.TEMPLATE:
        template = message.template
        if template is None:
            raise ValueError("A template message needs its template.")
        obj = template_object(
            template,
            message.destination_addr,
            message.template_body_params,
            message.template_header,
        )
        payload["template_name"] = template.name
        payload["template_params"] = json.dumps(obj, ensure_ascii=False)
    if callback_url:
        payload["callback_url"] = callback_url
    return payload
