"""The benchmark site: the admin, the callback, and a bare view to compare the callback with."""

from django.contrib import admin
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

try:
    from django.contrib.auth.decorators import login_not_required
except ImportError:  # before Django 5.1 there was no LoginRequiredMiddleware to opt out of
    login_not_required = None


@csrf_exempt
def bare(request: HttpRequest) -> HttpResponse:
    """One INSERT and an answer: the floor a callback is measured against."""
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_ping (body) VALUES (%s)", [request.body.decode()])
    return HttpResponse('{"ok": true}', content_type="application/json")


@csrf_exempt
def answer(request: HttpRequest, key: str = "") -> HttpResponse:
    """An answer and nothing else (no database): the lifecycle benchmark's bare receiver of
    callbacks and replies."""
    request.body  # noqa: B018 - read, as any receiver reads what it is sent
    return HttpResponse('{"ok": true}', content_type="application/json")


if login_not_required is not None:
    bare = login_not_required(bare)
    answer = login_not_required(answer)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("whatsapp/", include("django_whatsapp.urls")),
    path("bare/", bare),
    path("bare/callback/<str:key>/", answer),
    path("bare/inbound/", answer),
]
