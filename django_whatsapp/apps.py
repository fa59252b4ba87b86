from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DjangoWhatsAppConfig(AppConfig):
    name = "django_whatsapp"
    verbose_name = _("WhatsApp")
    default_auto_field = "django.db.models.BigAutoField"
