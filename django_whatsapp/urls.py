"""Mounts the status callback as ``django_whatsapp:callback`` and the endpoint for customers'
messages as ``django_whatsapp:inbound``."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from .webhooks.callback import CallbackView
from .webhooks.inbound import InboundView

app_name = "django_whatsapp"

# Open to anonymous requests in projects using LoginRequiredMiddleware: the signature is the
# credential. The UUID is checked by the view, so that a malformed one, or a URL without its
# signature, is answered in JSON like every other refusal.
callback = login_not_required(CallbackView.as_view())
inbound = login_not_required(InboundView.as_view())

urlpatterns = [
    path("callback/<str:message_uuid>/<str:signature>/", callback, name="callback"),
    path("callback/<str:message_uuid>/", callback, name="callback-unsigned"),
    path("inbound/<str:signature>/", inbound, name="inbound"),
    path("inbound/", inbound, name="inbound-unsigned"),
]
