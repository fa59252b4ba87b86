"""The WSGI application gunicorn serves during the load test."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loadtest.settings")
application = get_wsgi_application()
