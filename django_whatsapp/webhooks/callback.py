"""The status callback: verify the signature, parse, hand each report to the services, answer."""

from __future__ import annotations

import datetime
import logging
import uuid
import weakref
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import DatabaseError, InterfaceError, connections, router, transaction
from django.utils.translation import gettext as _
from rest_framework import exceptions, serializers
from rest_framework.negotiation import BaseContentNegotiation, DefaultContentNegotiation
from rest_framework.parsers import BaseParser, FormParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import services, signals, signing
from ..conf import get_settings
from ..models import Message, StatusEvent
from .parsing import (
    CallbackJSONParser,
    parse_json_body,
    parse_reports,
    report_payload,
)

logger = logging.getLogger("django_whatsapp.callback")


#: The start of PostgreSQL's epoch, as the one statement reports its instants from.
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@dataclass(frozen=True)
class _Lookup:
    """The compiled lookup of a message by its UUID for one database connection."""

    sql: str
    #: the select list for the statement that also applies a report (PostgreSQL), over the
    #: row ``{row}``, the timestamps in it as microseconds since the epoch (``instants``: their
    #: positions)
    columns: str
    instants: tuple[int, ...]
    names: list[str]
    converters: dict[int, tuple[list[Any], Any]]
    #: the select list when nobody listens to ``status_changed``: only what the view and the
    #: status rule read (``{row}`` as in :attr:`columns`), and those fields' names
    lean_columns: str
    lean_names: list[str]

    def load(self, alias: str, connection: Any, row: Iterable[Any]) -> Message:
        """The message from a row of the select list, the ORM's converters applied."""
        values = list(row)
        for position, (converters, expression) in self.converters.items():
            for converter in converters:
                values[position] = converter(values[position], expression, connection)
        return Message.from_db(alias, self.names, values)

    def load_counted(self, alias: str, connection: Any, row: Iterable[Any]) -> Message:
        """The message from a row of :attr:`columns`: each timestamp becomes the datetime
        the driver would have made of it (aware, in the connection's time zone; naive in
        ``TIME_ZONE`` without ``USE_TZ``). Parsing a timestamp's text in Python was a
        twentieth of a callback's CPU; a count of microseconds is one addition."""
        values = list(row)
        zone = connection.timezone
        local = None if zone is not None else zoneinfo.ZoneInfo(connection.timezone_name)
        for position in self.instants:
            micros = values[position]
            if micros is not None:
                instant = _EPOCH + datetime.timedelta(microseconds=micros)
                if zone is not None:
                    values[position] = instant.astimezone(zone)
                else:
                    values[position] = instant.astimezone(local).replace(tzinfo=None)
        return self.load(alias, connection, values)

    def load_lean(self, alias: str, row: Iterable[Any]) -> Message:
        """The message from a row of :attr:`lean_columns`: its other fields deferred (none of
        them needs a converter)."""
        return Message.from_db(alias, self.lean_names, list(row))


#: What the view and the status rule read of a message when no ``status_changed`` receiver
#: will be handed it: its key, its status (the answer) and its provider id (a report naming
#: another one goes the long way).
_LEAN_FIELDS = ("id", "status", "provider_message_id")

#: Per connection object (each thread has its own), so converters never cross threads.
_LOOKUPS: weakref.WeakKeyDictionary[Any, _Lookup] = weakref.WeakKeyDictionary()


def _lookup(alias: str, connection: Any) -> _Lookup:
    lookup = _LOOKUPS.get(connection)
    if lookup is None:
        query = Message.objects.using(alias).filter(uuid=uuid.UUID(int=0)).order_by()[:1].query
        compiler = query.get_compiler(alias)
        sql = compiler.as_sql()[0]
        columns = [column for column, _, _ in compiler.select]
        listed = []
        instants = []
        for position, column in enumerate(columns):
            text = "{row}." + connection.ops.quote_name(column.target.column)
            if column.target.get_internal_type() == "DateTimeField":
                # PostgreSQL 14 and later: EXTRACT gives an exact numeric, so the count is
                # exact to the microsecond. Django writes no infinite timestamp.
                text = f"(EXTRACT(EPOCH FROM {text}) * 1000000)::bigint"
                instants.append(position)
            listed.append(text)
        lean = [field for field in Message._meta.concrete_fields if field.name in _LEAN_FIELDS]
        lookup = _Lookup(
            sql,
            ", ".join(listed),
            tuple(instants),
            [column.target.attname for column in columns],
            compiler.get_converters(columns),
            ", ".join("{row}." + connection.ops.quote_name(field.column) for field in lean),
            [field.attname for field in lean],
        )
        _LOOKUPS[connection] = lookup
    return lookup


def find_message(key: uuid.UUID) -> Message | None:
    """The message with this UUID, or ``None``: one indexed query, the same SQL as
    ``Message.objects.filter(uuid=key).order_by()[:1]``, compiled once per connection rather
    than on every callback (building it was two fifths of a callback's CPU)."""
    alias = router.db_for_read(Message)
    connection = connections[alias]
    lookup = _lookup(alias, connection)
    value = Message._meta.get_field("uuid").get_db_prep_value(key, connection)
    with connection.cursor() as cursor:
        cursor.execute(lookup.sql, [value])
        row = cursor.fetchone()
    if row is None:
        return None
    return lookup.load(alias, connection, row)


def _receive_in_one_statement(
    alias: str, connection: Any, key: uuid.UUID, report: dict[str, Any], payload: dict[str, Any]
) -> tuple[Message, StatusEvent | None] | None:
    """The first report through ``services.receive_report_by_uuid`` (PostgreSQL): the message
    and its new event, or ``None`` for no such message. Raises
    :class:`~django_whatsapp.services.ReceiveFunctionMissing` before migration 0008 has run.

    The message is read whole only when a ``status_changed`` receiver will be handed it;
    otherwise the statement returns three of its 28 columns (reading and building the whole
    message was a sixth of the view's CPU, and a fifth of the statement's on the server)."""
    lookup = _lookup(alias, connection)
    if signals.status_changed.has_listeners(Message):
        columns = lookup.columns

        def load(row: Iterable[Any]) -> Message:
            return lookup.load_counted(alias, connection, row)

    else:
        columns = lookup.lean_columns

        def load(row: Iterable[Any]) -> Message:
            return lookup.load_lean(alias, row)

    return services.receive_report_by_uuid(
        columns,
        load,
        key,
        report["status"],
        source=StatusEvent.Source.CALLBACK,
        payload=payload,
        provider_message_id=report.get("message_id"),
        alias=alias,
    )


def _error(status: int, reason: str, **extra: Any) -> Response:
    return Response({"ok": False, "error": reason, **extra}, status=status)


class JSONOnlyNegotiation(BaseContentNegotiation):
    """Always answer in JSON: neither an ``Accept`` header nor a ``format`` field in the report may
    keep it from being applied (DRF would answer 406 or 404 before the view runs)."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return DefaultContentNegotiation().select_parser(request, parsers)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class CallbackView(APIView):
    """Receives the gateway's status reports for one message, named by a signed URL.

    No authentication (DRF's BasicAuthentication would try to log in whoever sends an
    ``Authorization: Basic`` header), no CSRF (the signature is the credential), no throttling.
    """

    authentication_classes = ()
    permission_classes = ()
    throttle_classes = ()
    parser_classes = (CallbackJSONParser, FormParser, MultiPartParser)
    renderer_classes = (JSONRenderer,)
    content_negotiation_class = JSONOnlyNegotiation
    #: The documented methods. Not ``head``: Django would route HEAD to ``get()`` and apply the
    #: report; HEAD is answered 405 and changes nothing.
    http_method_names = ["get", "post", "options"]

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        """Never wrapped in ``ATOMIC_REQUESTS``: each report is applied in its own transaction
        (by the services), committed before ``status_changed`` is sent."""
        return transaction.non_atomic_requests(super().as_view(**initkwargs))

    def get(self, request: Request, message_uuid: str, signature: str = "") -> Response:
        return self.receive(request, message_uuid, signature)

    def post(self, request: Request, message_uuid: str, signature: str = "") -> Response:
        return self.receive(request, message_uuid, signature)

    def options(self, request: Request, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]
        """The methods it takes (also in the ``Allow`` header), in this view's answer shape."""
        return Response({"ok": True, "methods": self.allowed_methods})

    def handle_exception(self, exc: Exception) -> Response:
        """DRF's own refusals (405 and the like) in this view's answer shape."""
        response = super().handle_exception(exc)
        detail = response.data.get("detail") if isinstance(response.data, dict) else None
        response.data = {"ok": False, "error": str(detail or response.status_text)}
        return response

    def receive(self, request: Request, message_uuid: str, signature: str) -> Response:
        conf = get_settings()
        try:
            key = uuid.UUID(message_uuid)
        except ValueError:
            return _error(404, _("No such message."))
        if not signature:
            return _error(403, _("The callback URL carries no signature."))
        if not signing.verify(key, signature, conf):
            logger.warning("WhatsApp callback with a bad signature refused")
            return _error(403, _("Bad signature."))
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0:
            return _error(400, _("Bad Content-Length header."))
        if length > conf.CALLBACK_MAX_BYTES:
            return self._too_large(conf.CALLBACK_MAX_BYTES)
        data: Any
        try:
            if request.method != "POST":
                data = request.query_params
            elif length and request._request.content_type == "application/json":
                # The common report: read as DRF would, without its request wrapping.
                data = parse_json_body(request._request)
            else:
                data = request.data
            if request.method == "POST" and not data:
                data = request.query_params  # a POST with the report in the query string
        except exceptions.UnsupportedMediaType as error:
            return _error(415, str(error.detail))
        except exceptions.ParseError as error:
            return _error(400, _("Malformed body: %(detail)s") % {"detail": error.detail})
        except RequestDataTooBig:  # Django's DATA_UPLOAD_MAX_MEMORY_SIZE, when it is the lower
            return _error(413, _("The body is too large."))
        except SuspiciousOperation as error:  # too many fields or files
            logger.warning("WhatsApp callback refused: %s", error)
            return _error(400, _("Malformed body: %(detail)s") % {"detail": error})
        if not data:
            return _error(400, _("Empty report: message_id and status are expected."))
        try:
            reports = parse_reports(data)
            payload = report_payload(data)
        except serializers.ValidationError as error:
            return _error(400, _("Malformed report."), fields=error.detail)
        try:
            return self._apply(key, reports, payload)
        except (DatabaseError, InterfaceError):
            # Each report is applied in one transaction, so a failure leaves nothing half-done;
            # 503 asks the gateway to deliver the report again later.
            logger.exception("WhatsApp callback could not be stored; answering 503")
            response = _error(503, _("The report could not be stored; please send it again."))
            response["Retry-After"] = "30"
            return response

    @staticmethod
    def _apply(key: uuid.UUID, reports: list[dict[str, Any]], payload: dict[str, Any]) -> Response:
        alias = router.db_for_write(Message)
        connection = connections[alias]
        applied = duplicates = 0
        try:
            found = None
            long_way = connection.vendor != "postgresql"
            if not long_way:
                # The common case in one round trip: the lookup and the first report together.
                try:
                    found = _receive_in_one_statement(alias, connection, key, reports[0], payload)
                except services.ReceiveFunctionMissing:
                    # New code deployed before `migrate`: the long way rather than a 503 for
                    # every callback until the migration runs. The view runs in autocommit, so
                    # the failed statement took nothing else with it.
                    logger.warning(
                        "WhatsApp callback: the database has no django_whatsapp_receive_report "
                        "function (run migrate); the report is applied the long way"
                    )
                    long_way = True
            if long_way:
                found_message = find_message(key)
                if found_message is None:
                    return _error(404, _("No such message."))
                message, rest = found_message, reports
            elif found is None:
                return _error(404, _("No such message."))
            else:
                message, event = found
                applied, duplicates = (1, 0) if event is not None else (0, 1)
                rest = reports[1:]
            for report in rest:
                event = services.receive_report(
                    message,
                    report["status"],
                    source=StatusEvent.Source.CALLBACK,
                    payload=payload,
                    provider_message_id=report.get("message_id"),
                )
                if event is None:
                    duplicates += 1
                else:
                    applied += 1
        except services.ReportMismatch as error:
            logger.warning("WhatsApp callback for message %s refused: %s", key, error)
            return _error(400, str(error))
        return Response(
            {"ok": True, "status": message.status, "applied": applied, "duplicates": duplicates}
        )

    @staticmethod
    def _too_large(limit: int) -> Response:
        return _error(413, _("The body is larger than %(max)d bytes.") % {"max": limit})
