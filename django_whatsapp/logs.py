"""The inbound URL's credential stays out of the logs.

The inbound endpoint (``/whatsapp/inbound/<signature>/``) has its credential in its path:
whoever reads a log line holding it can post STOP or START for any number. Django writes that path
in its own log records: ``django.request`` for every 4xx and 5xx answer (``Method Not Allowed
(PUT): /whatsapp/inbound/<signature>/``), ``django.server`` (runserver) for every request.

:class:`MaskSignatures` is a logging filter that writes ``<signature>`` instead of every path
segment that looks like one (32 or more hexadecimal digits, as the inbound and the callback URLs
carry), in the record's message and in the request a record carries (so a formatter showing
``%(request)s`` and the error e-mails to ``ADMINS`` show the masked path too). The app installs
it on the ``django.request`` and ``django.server`` loggers when it starts (:func:`install`,
called by ``AppConfig.ready``); add it to any other logger or handler that writes URLs, such as
gunicorn's access log (see the data-protection page of the docs)::

    "filters": {"whatsapp_mask": {"()": "django_whatsapp.logs.MaskSignatures"}},

This module imports nothing of Django at import time, so a server's own logging configuration
can name the filter before Django is set up.
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

__all__ = ["LOGGERS", "MASK", "MaskSignatures", "install", "is_masked", "mask_signatures"]

#: What a signature is replaced by.
MASK = "<signature>"
#: The loggers the app masks by itself.
LOGGERS = ("django.request", "django.server")
#: A path segment that looks like a signature: 32 or more hexadecimal digits between slashes.
_SIGNATURE = re.compile(r"(?<=/)[0-9a-fA-F]{32,}(?=/|\?|#|\s|\"|'|$)")


def mask_signatures(text: str) -> str:
    """``text`` with every path segment that looks like a signature replaced by ``<signature>``."""
    return _SIGNATURE.sub(MASK, text)


def _masked_request(request: Any) -> Any:
    """A copy of a Django request whose path (and the META entries holding it) is masked; the
    request itself is not touched."""
    clone = copy.copy(request)
    clone.path = mask_signatures(request.path)
    clone.path_info = mask_signatures(request.path_info)
    meta = dict(request.META)
    for key in ("PATH_INFO", "REQUEST_URI", "RAW_URI", "SCRIPT_URL"):
        if isinstance(meta.get(key), str):
            meta[key] = mask_signatures(meta[key])
    clone.META = meta
    return clone


class MaskSignatures(logging.Filter):
    """Masks signatures in a record's message and its ``request``; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted: its handler will say so
            return True
        masked = mask_signatures(message)
        if masked != message:
            record.msg, record.args = masked, ()
        request = getattr(record, "request", None)
        path = getattr(request, "path", None)
        if isinstance(path, str) and hasattr(request, "META") and _SIGNATURE.search(path):
            record.request = _masked_request(request)
        return True


def is_masked(logger: logging.Logger) -> bool:
    """Whether ``logger`` itself carries a :class:`MaskSignatures` filter."""
    return any(isinstance(found, MaskSignatures) for found in logger.filters)


def install() -> None:
    """Add :class:`MaskSignatures` to the ``django.request`` and ``django.server`` loggers (once:
    calling it again adds nothing)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not is_masked(logger):
            logger.addFilter(MaskSignatures())
