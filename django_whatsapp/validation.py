"""The rules a message must meet before anything is sent, shared by services, forms and commands.

Each ``clean_*`` function returns the normalised value or raises ``ValidationError``; the
``validate_message`` function checks a whole message and reports one error per field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .inputs import check_input
from .models import Message, Template
from .numbers import normalize_number

MAX_ADDR_LENGTH = 20
MAX_TEXT_LENGTH = 4096
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

#: The recipient's digits, however the number is written (``+``, ``00``, spaces, dashes,
#: brackets; a national number with ``DEFAULT_REGION``): the one function that reads a number,
#: :func:`django_whatsapp.numbers.normalize_number`.
clean_recipient = normalize_number


def clean_sender(value: Any) -> str:
    text = str(value or "").strip()
    check_input(text)
    if not text:
        raise ValidationError(
            _("Enter a sender, or set DEFAULT_SOURCE_ADDR in DJANGO_WHATSAPP."), code="required"
        )
    if len(text) > MAX_ADDR_LENGTH:
        raise ValidationError(
            _("The sender has %(count)d characters; at most %(max)d are allowed."),
            code="max_length",
            params={"count": len(text), "max": MAX_ADDR_LENGTH},
        )
    return text


def clean_text(value: Any, *, required: bool = True) -> str:
    text = str(value or "")
    check_input(text)
    if not text.strip():
        if required:
            raise ValidationError(_("Enter the message text."), code="required")
        return ""
    if len(text) > MAX_TEXT_LENGTH:
        raise ValidationError(
            _("The text has %(count)d characters; at most %(max)d are allowed."),
            code="max_length",
            params={"count": len(text), "max": MAX_TEXT_LENGTH},
        )
    return text


def clean_image_url(value: Any) -> str:
    url = str(value or "").strip()
    check_input(url)
    if not url:
        raise ValidationError(_("Enter the image's URL."), code="required")
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        raise ValidationError(
            _("Enter a full http:// or https:// URL of the image."), code="invalid"
        ) from None
    if not urlsplit(url).path.lower().endswith(IMAGE_EXTENSIONS):
        raise ValidationError(
            _("The image URL must end in .jpg, .jpeg or .png."), code="invalid_extension"
        )
    return url


def clean_template(value: Template | str | None) -> Template:
    if value is None or value == "":
        raise ValidationError(_("Choose a template."), code="required")
    if isinstance(value, Template):
        if value.pk is None:
            raise ValidationError(
                _("The template %(name)s is not saved."),
                code="unsaved",
                params={"name": value.name},
            )
        template = value
    else:
        check_input(str(value))
        found = list(Template.objects.filter(name=value)[:2])
        if not found:
            raise ValidationError(
                _("There is no template named %(name)s."), code="invalid", params={"name": value}
            )
        if len(found) > 1:
            raise ValidationError(
                _("Several templates are named %(name)s; pass the Template itself."),
                code="ambiguous",
                params={"name": value},
            )
        template = found[0]
    if not template.is_active:
        raise ValidationError(
            _("The template %(name)s is not active."),
            code="inactive",
            params={"name": template.name},
        )
    return template


def clean_template_params(template: Template, params: Sequence[Any], header: Any) -> dict[str, Any]:
    """The stored form of a template's parameters: ``{"body": [...], "header": ...}``."""
    errors: dict[str, list[ValidationError]] = {}
    body = [str(p) for p in params]
    for name, value in (("template_params", body), ("header", header)):
        try:
            check_input(value if isinstance(value, list) else str(value or ""))
        except ValidationError as error:
            errors.setdefault(name, []).append(error)
    if errors:
        raise ValidationError(errors)
    expected = template.placeholder_count
    if len(body) != expected or any(not p.strip() for p in body):
        errors.setdefault("template_params", []).append(
            ValidationError(
                ngettext(
                    "The template %(name)s takes %(expected)d parameter; %(given)d were given.",
                    "The template %(name)s takes %(expected)d parameters; %(given)d were given.",
                    expected,
                )
                % {"name": template.name, "expected": expected, "given": len(body)}
                if len(body) != expected
                else _("Template parameters cannot be empty."),
                code="count",
            )
        )
    stored: dict[str, Any] = {"body": body}
    header_text = str(header).strip() if header not in (None, "") else ""
    if template.header_type == Template.HeaderType.NONE:
        if header_text:
            errors.setdefault("header", []).append(
                ValidationError(_("This template has no header."), code="unexpected")
            )
    elif not header_text:
        errors.setdefault("header", []).append(
            ValidationError(_("This template needs a header value."), code="required")
        )
    elif template.header_type == Template.HeaderType.IMAGE:
        try:
            stored["header"] = clean_image_url(header_text)
        except ValidationError as error:
            errors.setdefault("header", []).append(error)
    else:
        stored["header"] = header_text
    if errors:
        raise ValidationError(errors)
    return stored


def validate_message(message: Message) -> None:
    """Check and normalise every field of a message about to be sent; one error per field."""
    errors: dict[str, Any] = {}

    def check(field: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ValidationError as error:
            errors[field] = error
            return None

    # A number read once, where it enters: an unsaved message's as it was given (with
    # DEFAULT_REGION), a stored one's as the digits it holds.
    recipient = check(
        "destination_addr",
        normalize_number,
        message.destination_addr,
        national=message.pk is None,
    )
    sender = check("source_addr", clean_sender, message.source_addr)
    cleaned: dict[str, Any] = {}
    kind = message.message_type
    if kind == Message.MessageType.TEXT:
        cleaned["text"] = check("text", clean_text, message.text)
    elif kind == Message.MessageType.MEDIA:
        cleaned["file_url"] = check("file_url", clean_image_url, message.file_url)
        # An optional caption: one of only blanks is no caption.
        cleaned["text"] = check("text", clean_text, message.text, required=False)
    elif kind == Message.MessageType.TEMPLATE:
        template = check("template", clean_template, message.template)
        if template is not None:
            params = message.template_params or {}
            try:
                cleaned["template_params"] = clean_template_params(
                    template, params.get("body", []), params.get("header")
                )
            except ValidationError as error:
                errors.update(error.error_dict)
    else:
        errors["message_type"] = ValidationError(
            _("Choose text, image or template."), code="invalid"
        )
    if errors:
        raise ValidationError(errors)
    # Only a valid message is normalised: an invalid one is left as it was given.
    message.destination_addr = recipient
    message.source_addr = sender
    for field, value in cleaned.items():
        setattr(message, field, value)
