"""The status callback: verify the signature, parse, hand each report to the services, answer."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from django.utils.translation import gettext as _
from rest_framework import exceptions, serializers
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import services, signing
from .conf import get_settings
from .models import Message, StatusEvent
from .serializers import parse_reports

logger = logging.getLogger("django_whatsapp.callback")


def _error(status: int, reason: str, **extra: Any) -> Response:
    return Response({"ok": False, "error": reason, **extra}, status=status)


class CallbackView(APIView):
    """Receives the gateway's status reports for one message, named by a signed URL.

    No authentication (DRF's BasicAuthentication would try to log in whoever sends an
    ``Authorization: Basic`` header), no CSRF (the signature is the credential), no throttling.
    """

    authentication_classes = ()
    permission_classes = ()
    throttle_classes = ()
    parser_classes = (JSONParser, FormParser, MultiPartParser)
    renderer_classes = (JSONRenderer,)

    def get(self, request: Request, message_uuid: uuid.UUID, signature: str) -> Response:
        return self.handle(request, message_uuid, signature, lambda: request.query_params)

    def post(self, request: Request, message_uuid: uuid.UUID, signature: str) -> Response:
        return self.handle(request, message_uuid, signature, lambda: request.data)

    def handle(
        self, request: Request, message_uuid: uuid.UUID, signature: str, read: Any
    ) -> Response:
        conf = get_settings()
        if not signing.verify(message_uuid, signature, conf):
            logger.warning("WhatsApp callback with a bad signature refused")
            return _error(403, _("Bad signature."))
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _error(400, _("Bad Content-Length header."))
        if length > conf.CALLBACK_MAX_BYTES:
            return _error(
                413, _("The body is larger than %(max)d bytes.") % {"max": conf.CALLBACK_MAX_BYTES}
            )
        try:
            data = read()
        except exceptions.UnsupportedMediaType as error:
            return _error(415, str(error.detail))
        except exceptions.ParseError as error:
            return _error(400, _("Malformed body: %(detail)s") % {"detail": error.detail})
        if request.method == "POST" and not data and request.query_params:
            data = request.query_params  # POST with the report in the query string
        if not data:
            return _error(400, _("Empty report: message_id and status are expected."))
        try:
            reports = parse_reports(data)
        except serializers.ValidationError as error:
            return _error(400, _("Malformed report."), fields=error.detail)
        message = Message.objects.filter(uuid=message_uuid).first()
        if message is None:
            return _error(404, _("No such message."))
        applied = duplicates = 0
        for report in reports:
            try:
                event = services.receive_report(
                    message,
                    report["status"],
                    source=StatusEvent.Source.CALLBACK,
                    payload=data if isinstance(data, dict) else dict(data.items()),
                    provider_message_id=report.get("message_id"),
                )
            except services.ReportMismatch as error:
                return _error(400, str(error))
            if event is None:
                duplicates += 1
            else:
                applied += 1
        return Response(
            {"ok": True, "status": message.status, "applied": applied, "duplicates": duplicates}
        )
