"""Thin HTTP wrappers around :data:`django_whatsapp.sandbox.gateway.gateway`."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from .gateway import (
    SandboxResponse,
    gateway,
    invalid_parameter,
    is_authorized,
    load_body,
    unauthorized,
)


def _respond(answer: SandboxResponse) -> JsonResponse:
    return JsonResponse(answer.body, status=answer.status, headers=answer.headers)


def _handle(request: HttpRequest, endpoint: Callable[[object], SandboxResponse]) -> HttpResponse:
    if not is_authorized(request.headers.get("Authorization")):
        return _respond(unauthorized())
    try:
        raw = request.body
    except RequestDataTooBig:
        return _respond(invalid_parameter("body"))
    return _respond(endpoint(load_body(raw)))


@login_not_required
@csrf_exempt
@require_POST
def send(request: HttpRequest) -> HttpResponse:
    """``POST v1/api/send-whatsapp``: accept or refuse a message as the gateway would."""
    return _handle(request, gateway.submit)


@login_not_required
@csrf_exempt
@require_POST
def status(request: HttpRequest) -> HttpResponse:
    """``POST v1/api/receive-whatsapp``: the current status of ``{"message_id": N}``."""
    return _handle(request, gateway.status)


@login_not_required
@csrf_exempt
@require_POST
def simulate_inbound(request: HttpRequest) -> HttpResponse:
    """``POST v1/api/simulate-inbound`` (the sandbox's own, not the provider's): ``{"from",
    "text", "image", "to", "url"}``, a customer's message to deliver to the project's inbound
    ``url``; answers the project's answer."""
    return _handle(request, gateway.simulate_inbound)
