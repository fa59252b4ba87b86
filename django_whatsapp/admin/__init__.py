"""The operator's console, one module per screen.

- :mod:`.messages`: compose, the message list with its summary and funnel, a message's page;
- :mod:`.templates`: templates;
- :mod:`.conversations`: conversations and inbound reports;
- :mod:`.contacts`: contacts, read-only, with their opt-out history;
- :mod:`.bulk`: "Send to many";
- :mod:`.campaigns`: campaigns: the list, a campaign's page, create from a CSV upload;
- :mod:`.actions`: the send, refresh and retry actions the screens share;
- :mod:`.display`: badges, bubbles, error explanations and the status summary.

Every send, retry and status refresh goes through :mod:`django_whatsapp.services` and needs the
``django_whatsapp.send_message`` permission. Importing this package registers the model admins.
"""

from . import campaigns, contacts, conversations, messages, templates

__all__ = ["campaigns", "contacts", "conversations", "messages", "templates"]
