"""An imitation of DecisionTelecom's WhatsApp gateway, for demos and tests: no key, no network.

Nothing is exposed unless a project mounts it, e.g. ``path("sandbox/", include(
"django_whatsapp.sandbox.urls"))``, which makes ``http://HOST/sandbox/v1/api`` a ``BASE_URL``.
The rules (validation, scripted failures by recipient, status steps and callbacks) are described
in :mod:`django_whatsapp.sandbox.gateway`.
"""
