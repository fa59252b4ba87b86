"""The inbound endpoint: verify the signature, store the report raw, read it, answer.

Answers (always JSON):

- ``200`` a message was stored (``understood`` or ``partial``), or it was a duplicate;
- ``202`` the report was stored but holds no message that could be read (``not_understood``): the
  gateway need not send it again, an operator can read it in the admin (*Inbound reports*);
- ``200`` to ``HEAD`` (and to a ``GET`` without a query string) with a good signature: a check
  that the URL works; nothing is stored or read;
- ``403`` no or bad signature: refused before anything is stored, so that whoever does not have
  the URL cannot fill the database;
- ``413`` a body over ``CALLBACK_MAX_BYTES``: not read, but its arrival is stored (``refused``);
- ``503`` the database failed: send it again later.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError, InterfaceError, transaction
from django.utils.translation import gettext as _
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import inbound
from ..conf import get_settings
from ..models import InboundReport

logger = logging.getLogger("django_whatsapp.inbound")

Outcome = InboundReport.Outcome


def _error(status: int, reason: str) -> Response:
    return Response({"ok": False, "error": reason}, status=status)


class AlwaysJSON(BaseContentNegotiation):
    """Answer in JSON whatever the ``Accept`` header says; the body is read by :mod:`.inbound`,
    not by DRF's parsers."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return None

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class InboundView(APIView):
    """Receives customers' messages from the gateway at a signed URL (see
    :func:`django_whatsapp.inbound.inbound_url`). No authentication, no CSRF, no throttling: the
    signature is the credential."""

    authentication_classes = ()
    permission_classes = ()
    throttle_classes = ()
    parser_classes = ()
    renderer_classes = (JSONRenderer,)
    content_negotiation_class = AlwaysJSON

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        """Never wrapped in ``ATOMIC_REQUESTS``: the raw report is committed before it is read."""
        return transaction.non_atomic_requests(super().as_view(**initkwargs))

    def get(self, request: Request, signature: str = "") -> Response:
        return self.receive(request, signature)

    def post(self, request: Request, signature: str = "") -> Response:
        return self.receive(request, signature)

    def options(self, request: Request, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]
        return Response({"ok": True, "methods": self.allowed_methods})

    def handle_exception(self, exc: Exception) -> Response:
        """DRF's own refusals (405 and the like) in this view's answer shape."""
        response = super().handle_exception(exc)
        detail = response.data.get("detail") if isinstance(response.data, dict) else None
        response.data = {"ok": False, "error": str(detail or response.status_text)}
        return response

    def receive(self, request: Request, signature: str) -> Response:
        conf = get_settings()
        if not signature:
            return _error(403, _("The inbound URL carries no signature."))
        if not inbound.verify(signature, conf):
            logger.warning("WhatsApp inbound report with a bad signature refused")
            return _error(403, _("Bad signature."))
        django_request = request._request
        if request.method == "HEAD" or (
            request.method == "GET" and not django_request.META.get("QUERY_STRING")
        ):
            # A check that the URL works: nothing is stored or read, whatever the query string
            # (Django routes HEAD to get(); it must never be taken for a report).
            return Response({"ok": True, "detail": _("Ready to receive messages.")})
        try:
            length = int(django_request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0:
            return _error(400, _("Bad Content-Length header."))
        try:
            if length > conf.CALLBACK_MAX_BYTES:
                return self._too_large(django_request, length, conf.CALLBACK_MAX_BYTES)
            try:
                body = django_request.body
            except RequestDataTooBig:  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE is the lower
                return self._too_large(django_request, length, conf.CALLBACK_MAX_BYTES)
            report = inbound.store_report(
                method=django_request.method or "",
                content_type=django_request.META.get("CONTENT_TYPE", ""),
                query_string=django_request.META.get("QUERY_STRING", ""),
                body=body,
            )
            try:
                data = inbound.parse_request(django_request, body)
            except inbound.NotUnderstood as why:
                inbound.finish(report, Outcome.NOT_UNDERSTOOD, str(why))
                return self._not_understood(report)
            receipt = inbound.receive(report, data)
        except (DatabaseError, InterfaceError):
            logger.exception("WhatsApp inbound report could not be stored; answering 503")
            response = _error(503, _("The report could not be stored; please send it again."))
            response["Retry-After"] = "30"
            return response
        if receipt.outcome == Outcome.NOT_UNDERSTOOD:
            return self._not_understood(report)
        answer: dict[str, Any] = {
            "ok": True,
            "outcome": receipt.outcome,
            "received": len(receipt.created),
            "duplicates": len(receipt.duplicates),
        }
        if report.detail:
            answer["detail"] = report.detail
        return Response(answer)

    @staticmethod
    def _not_understood(report: InboundReport) -> Response:
        return Response(
            {"ok": True, "outcome": report.outcome, "stored": True, "reason": report.detail},
            status=202,
        )

    @staticmethod
    def _too_large(django_request: Any, length: int, limit: int) -> Response:
        detail = f"A body of {length} bytes, over the limit of {limit}: not read."
        inbound.store_report(
            method=django_request.method or "",
            content_type=django_request.META.get("CONTENT_TYPE", ""),
            query_string=django_request.META.get("QUERY_STRING", ""),
            body_size=length,
            outcome=Outcome.REFUSED,
            detail=detail,
        )
        logger.warning("WhatsApp inbound report refused: %s", detail)
        return _error(413, _("The body is larger than %(max)d bytes.") % {"max": limit})
