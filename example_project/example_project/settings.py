"""Settings of the example project, read from the environment and an optional ``.env`` file.

``example_project/.env.example`` lists every variable. Variables already in the environment win
over the file. With no ``WHATSAPP_API_KEY`` the project talks to its own sandbox gateway, mounted
at ``/sandbox/`` on this same server, so everything works offline.
"""

from importlib.util import find_spec
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent  # example_project/

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")

SECRET_KEY = env.str(
    "DJANGO_SECRET_KEY", default="django-insecure-example-project-do-not-use-in-production"
)
DEBUG = env.bool("DJANGO_DEBUG", default=True)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_whatsapp",
    "demo",
]

# -- campaigns and queued sends: Django's task framework, its queue in this database -----------
# `make demo` runs `manage.py db_worker` beside the server: the worker sends campaigns (a
# campaign is never sent inside a web request). Django 6 has the framework built in; on Django
# 5.2 it is the django-tasks backport.
if find_spec("django.tasks") is None:
    INSTALLED_APPS.append("django_tasks")
INSTALLED_APPS.append("django_tasks_db")
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The admin follows the browser's language: English, Russian or Ukrainian.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a login; the WhatsApp callback and the sandbox opt out on their own.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
LOGIN_URL = "admin:login"

ROOT_URLCONF = "example_project.urls"
WSGI_APPLICATION = "example_project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # admin/base_site.html: the admin with a language switcher.
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The server's threads, its sandbox callbacks and a command in another terminal all write:
    # IMMEDIATE transactions queue writers instead of failing with "database is locked", and the
    # timeout is how long a writer waits its turn.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = []  # the demo's admin/admin is deliberate

LANGUAGE_CODE = "en-us"
LANGUAGES = [("en", "English"), ("ru", "Русский"), ("uk", "Українська")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"

# -- django-whatsapp ----------------------------------------------------------------------------

_callback_base = env.str("WHATSAPP_CALLBACK_BASE_URL", default="http://127.0.0.1:8000").rstrip("/")
#: The origin this server is reached at: callbacks come back to it, and the sandbox lives on it.
SITE_URL = _callback_base or "http://127.0.0.1:8000"

_api_key = env.str("WHATSAPP_API_KEY", default="")
#: No key: send to this server's own sandbox gateway, mounted at /sandbox/ in urls.py.
WHATSAPP_SANDBOX = not _api_key

DJANGO_WHATSAPP = {
    "API_KEY": _api_key or "sandbox",
    "BASE_URL": (
        f"{SITE_URL}/sandbox/v1/api"
        if WHATSAPP_SANDBOX
        else env.str("WHATSAPP_BASE_URL", default="") or "https://web.it-decision.com/v1/api"
    ),
    "DEFAULT_SOURCE_ADDR": env.str("WHATSAPP_SOURCE_ADDR", default="DemoShop"),
    # Empty turns callbacks off; statuses then come from polling (whatsapp_resync).
    "CALLBACK_BASE_URL": _callback_base or None,
    # Comma-separated for rotation: the first signs, every one verifies.
    "CALLBACK_SECRET": [
        secret
        for secret in env.list(
            "WHATSAPP_CALLBACK_SECRET", default=["example-project-insecure-callback-secret"]
        )
        if secret
    ],
    "SANDBOX_CALLBACK_DELAY": env.float("WHATSAPP_SANDBOX_CALLBACK_DELAY", default=1.0),
    # With this on, the sandbox keeps the 24-hour window as the gateway does: a text or image
    # goes only to a number that wrote in the last 24 hours (manage.py whatsapp_sandbox_inbound,
    # or the admin's "Simulate a customer reply"); templates always go.
    "SANDBOX_ENFORCE_WINDOW": env.bool("WHATSAPP_SANDBOX_ENFORCE_WINDOW", default=False),
    # off, warn or enforce: what this app does itself when a contact's window is closed.
    "SERVICE_WINDOW_POLICY": env.str("WHATSAPP_SERVICE_WINDOW_POLICY", default="off"),
}

# -- demo_setup ---------------------------------------------------------------------------------

DEMO_ADMIN_USERNAME = env.str("DEMO_ADMIN_USERNAME", default="admin")
DEMO_ADMIN_PASSWORD = env.str("DEMO_ADMIN_PASSWORD", default="admin")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "console": {"format": "{asctime} {levelname} {name}: {message}", "style": "{"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "console"},
    },
    "loggers": {
        "django_whatsapp": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}
