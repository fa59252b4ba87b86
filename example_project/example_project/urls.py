"""URLs of the example project: the admin (with a language switcher), the WhatsApp callback and,
without a key, the sandbox."""

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.urls import URLPattern, URLResolver, include, path
from django.views.generic import RedirectView

urlpatterns: list[URLPattern | URLResolver] = [
    path(
        "",
        login_not_required(RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    ),
    path("admin/", admin.site.urls),
    path("whatsapp/", include("django_whatsapp.urls")),
    # The admin's language switcher (templates/admin/base_site.html) posts here.
    path("i18n/", include("django.conf.urls.i18n")),
]

if settings.WHATSAPP_SANDBOX:
    # The imitation gateway that DJANGO_WHATSAPP["BASE_URL"] points at when no key is set.
    urlpatterns.append(path("sandbox/", include("django_whatsapp.sandbox.urls")))
