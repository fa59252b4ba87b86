"""The task-framework entry points; they call the services.

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

from . import services
from .models import Message


@task()
def send_message_task(message_id: int) -> str | None:
    """Send one stored message now. Returns its status, or ``None`` when it no longer exists.

    Running it twice for one message (two workers got the same job) submits it once: the
    services' claim lets only one of them move it to ``sending``.
    """
    message = Message.objects.filter(pk=message_id).first()
    if message is None:
        return None
    services.send_message(message, enqueue=False)
    return str(message.status)
