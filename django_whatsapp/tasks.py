"""The task-framework entry points, and handing messages to them.

Django's task framework is ``django.tasks`` on Django 6.0 and later, and the ``django-tasks``
backport (``django_tasks``) on Django 5.2. Any backend of that framework runs these tasks: the
database backend ``django_tasks_db`` (``manage.py db_worker``), RQ on Redis (``django-tasks-rq``),
Celery (``django-tasks-celery``)... This module is imported only when ``SEND_ASYNC`` is on (or a
message is explicitly enqueued).
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

try:  # Django 6.0+
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    try:
        from django_tasks import task  # type: ignore[no-redef,import-not-found,unused-ignore]
    except ImportError as error:
        raise ImproperlyConfigured(
            "DJANGO_WHATSAPP['SEND_ASYNC'] needs Django's task framework: Django 6.0+, or on "
            "Django 5.2 the backport (pip install django-tasks) with a TASKS backend such as "
            "django-tasks-db."
        ) from error

import logging
from functools import partial

from django.db import transaction
from django.utils import timezone

from . import optout
from .conf import get_settings
from .models import Message
from .sending import claim_for_sending, move_status, send_now
from .signing import callback_url
from .validation import validate_message

logger = logging.getLogger("django_whatsapp")
Status = Message.Status


@task()
def send_message_task(message_id: int) -> str | None:
    """Send one stored message now. Returns its status, or ``None`` when it no longer exists.

    Running it twice for one message (two workers got the same job) submits it once: the
    services' claim lets only one of them move it to ``sending``.
    """
    message = Message.objects.filter(pk=message_id).first()
    if message is None:
        return None
    send_now(message)
    return str(message.status)


def enqueue_message(message: Message) -> Message:
    """Store a message as ``queued`` and hand it to the task framework when the current
    transaction commits (at once outside one); a rolled-back transaction sends nothing.

    An unsaved message is validated and saved as ``queued``; a ``draft`` is moved to ``queued``;
    a ``queued`` one (a retry, or one whose task was lost) is enqueued again, which is safe: the
    worker's claim submits it at most once. A message in any other status is returned as it is.
    Raises ``ValidationError`` (nothing stored) for an invalid message.
    """
    conf = get_settings(message.account)
    # A configuration error surfaces here, not later in a worker.
    conf.require_api_key()
    callback_url(message.uuid, conf)
    now = timezone.now()
    if message.pk is None:
        validate_message(message)
        message.status, message.status_changed_at = Status.QUEUED, now
        message.save()
    elif message.status == Status.DRAFT:
        validate_message(message)
        if not move_status(message, (Status.DRAFT,), Status.QUEUED, now):
            message.refresh_from_db()
            return message
        message.status, message.status_changed_at = Status.QUEUED, now
    elif message.status != Status.QUEUED:
        return message
    if optout.refusal(message) is not None:
        # The recipient opted out: refused now (not_sent, OptedOut kept), no task enqueued.
        claim_for_sending(message, conf)
        return message
    transaction.on_commit(partial(_enqueue, message.pk))
    return message


def _enqueue(message_id: int) -> None:
    send_message_task.enqueue(message_id)
    logger.info("WhatsApp message %s queued", message_id)
