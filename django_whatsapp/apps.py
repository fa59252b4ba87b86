from django.apps import AppConfig
from django.core import checks
from django.utils.translation import gettext_lazy as _


class DjangoWhatsAppConfig(AppConfig):
    name = "django_whatsapp"
    verbose_name = _("WhatsApp")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import logs
        from .checks import check_settings
        from .testing.transport import register

        checks.register(check_settings, "django_whatsapp")
        # The inbound URL's signature never reaches django.request's or runserver's log lines.
        logs.install()
        # BASE_URL = "memory://": the in-process test gateway answers (django_whatsapp.testing).
        register()
