"""Mount with ``path("sandbox/", include("django_whatsapp.sandbox.urls"))``; BASE_URL is then
``http://HOST/sandbox/v1/api``."""

from django.urls import path

from . import SIMULATE_INBOUND_PATH, views

app_name = "django_whatsapp_sandbox"

urlpatterns = [
    path("v1/api/send-whatsapp", views.send, name="send"),
    path("v1/api/receive-whatsapp", views.status, name="status"),
    path(f"v1/api/{SIMULATE_INBOUND_PATH}", views.simulate_inbound, name="simulate-inbound"),
]
