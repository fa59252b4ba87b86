from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The example project's own app: the ``demo_setup`` command."""

    name = "demo"
    verbose_name = "Demo"
    default_auto_field = "django.db.models.BigAutoField"
