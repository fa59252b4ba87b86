from django.contrib.auth.decorators import login_not_required
from django.urls import path

from .views import CallbackView

app_name = "django_whatsapp"

urlpatterns = [
    path(
        "callback/<uuid:message_uuid>/<str:signature>/",
        login_not_required(CallbackView.as_view()),
        name="callback",
    ),
]
