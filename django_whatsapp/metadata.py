"""The caller's own data on a message: ``metadata``, ``tags`` and ``target``.

None of it goes to the gateway. ``metadata`` is a JSON object (at most :data:`MAX_METADATA_BYTES`
once encoded, nested at most :data:`~django_whatsapp.inputs.MAX_DEPTH` levels, no NUL and no
lone surrogate: :func:`~django_whatsapp.inputs.check_input`), ``tags`` a list of at most
:data:`MAX_TAGS` short labels, and ``target`` any saved model instance, stored as a generic
foreign key (content type and primary key as text, so any primary key type works).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .inputs import MAX_BYTES, check_input

#: The most tags one message may carry.
MAX_TAGS = 20
#: The longest tag, in characters.
MAX_TAG_LENGTH = 64
#: The largest ``metadata``, in bytes of JSON (the limit of everything a caller passes).
MAX_METADATA_BYTES = MAX_BYTES
#: Characters a tag may not hold: quotes and backslashes (so that a tag is found by its JSON
#: text on every database), and control characters.
_FORBIDDEN = frozenset('"\\') | frozenset(chr(c) for c in range(32)) | {"\x7f"}


def validate_tags(value: Any) -> None:
    """A list of at most :data:`MAX_TAGS` distinct, non-empty strings of at most
    :data:`MAX_TAG_LENGTH` characters without quotes, backslashes or control characters."""
    if not isinstance(value, list):
        raise ValidationError(_("Tags must be a list of strings."), code="invalid")
    if len(value) > MAX_TAGS:
        raise ValidationError(
            ngettext(
                "At most %(max)d tag is allowed.", "At most %(max)d tags are allowed.", MAX_TAGS
            )
            % {"max": MAX_TAGS},
            code="max_tags",
        )
    for tag in value:
        if not isinstance(tag, str) or not tag.strip():
            raise ValidationError(_("Each tag must be a non-empty string."), code="invalid")
        check_input(tag)
        if len(tag) > MAX_TAG_LENGTH:
            raise ValidationError(
                _("The tag %(tag)s is longer than %(max)d characters.")
                % {"tag": repr(tag[:20] + "..."), "max": MAX_TAG_LENGTH},
                code="max_length",
            )
        if _FORBIDDEN.intersection(tag):
            raise ValidationError(
                _("The tag %(tag)s holds a quote, a backslash or a control character.")
                % {"tag": repr(tag)},
                code="invalid",
            )
    if len(set(value)) != len(value):
        raise ValidationError(_("Each tag may be given once."), code="duplicate")


def validate_metadata(value: Any) -> None:
    """A JSON object with string keys, at most :data:`MAX_METADATA_BYTES` once encoded and
    :data:`~django_whatsapp.inputs.MAX_DEPTH` levels deep, without NUL characters or lone
    surrogates (:func:`~django_whatsapp.inputs.check_input`)."""
    if not isinstance(value, dict):
        raise ValidationError(_("Metadata must be a JSON object (a dict)."), code="invalid")
    if any(not isinstance(key, str) for key in value):
        raise ValidationError(_("Metadata keys must be strings."), code="invalid_key")
    check_input(value, max_bytes=MAX_METADATA_BYTES)


def clean_links(
    metadata: Mapping[str, Any] | None = None,
    tags: Iterable[str] | None = None,
    target: models.Model | None = None,
) -> dict[str, Any]:
    """The message fields for ``metadata``, ``tags`` and ``target``, validated; raises
    ``ValidationError`` naming each bad one. ``None`` leaves a field out (its default)."""
    from django.contrib.contenttypes.models import ContentType  # the app registry is ready

    fields: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    if metadata is not None:
        value = dict(metadata) if isinstance(metadata, Mapping) else metadata
        try:
            validate_metadata(value)
            fields["metadata"] = value
        except ValidationError as error:
            errors["metadata"] = error
    if tags is not None:
        listed = [tags] if isinstance(tags, str) else list(tags)
        try:
            validate_tags(listed)
            fields["tags"] = listed
        except ValidationError as error:
            errors["tags"] = error
    if target is not None:
        if not isinstance(target, models.Model):
            errors["target"] = ValidationError(
                _("The target must be a model instance."), code="invalid"
            )
        elif target.pk is None:
            errors["target"] = ValidationError(
                _("The target must be saved first (it has no primary key)."), code="unsaved"
            )
        elif len(str(target.pk)) > 255:
            errors["target"] = ValidationError(
                _("The target's primary key is longer than 255 characters."), code="max_length"
            )
        else:
            fields["target_content_type"] = ContentType.objects.get_for_model(target)
            fields["target_object_id"] = str(target.pk)
    if errors:
        raise ValidationError(errors)
    return fields


def has_tag(tag: str, *, supports_contains: bool) -> models.Q:
    """A filter for the messages carrying ``tag``: JSON containment where the database has it
    (PostgreSQL, MySQL...), else a match on the list's JSON text (SQLite), exact because a tag
    holds no quote or backslash."""
    if supports_contains:
        return models.Q(tags__contains=[tag])
    return models.Q(tags__regex=re.escape(json.dumps(tag)))


def forget(value: Any, mentions: re.Pattern[str]) -> tuple[Any, int]:
    """``value`` (a message's ``metadata``, tags, or an event's payload) without every entry
    that names a number, for a data-subject erasure: ``mentions`` finds the number written any
    way (:func:`django_whatsapp.numbers.mentions`, never a part of another number). An entry
    whose key or value names it is dropped, and so is a list item; nested objects and lists are
    searched (without recursion: metadata stored before it was checked may be 900 levels deep).
    Returns the new value and how many entries were dropped."""

    def names(item: Any) -> bool:
        return (
            isinstance(item, str | int)
            and not isinstance(item, bool)
            and bool(mentions.search(str(item)))
        )

    dropped = 0
    result: list[Any] = [None]
    # What to copy next: the source, the container the copy goes in, and where in it.
    stack: list[tuple[Any, Any, Any]] = [(value, result, 0)]
    while stack:
        source, into, place = stack.pop()
        if isinstance(source, dict):
            kept: dict[str, Any] = {}
            into[place] = kept
            for key, item in source.items():
                if names(key) or names(item):
                    dropped += 1
                    continue
                kept[key] = None
                stack.append((item, kept, key))
        elif isinstance(source, list):
            items: list[Any] = []
            into[place] = items
            for item in source:
                if names(item):
                    dropped += 1
                    continue
                items.append(None)
                stack.append((item, items, len(items) - 1))
        else:
            into[place] = source
    return result[0], dropped
