"""The operator's console, one module per screen.

- :mod:`.messages`: compose, the message list with its summary, funnel, chart and export, a
  message's page (:mod:`.message_page`, :mod:`.message_filters`, :mod:`.message_tools`);
- :mod:`.events`: status events, read-only;
- :mod:`.templates`: templates;
- :mod:`.conversations`: conversations and inbound reports;
- :mod:`.contacts`: contacts, whether they may be sent to, their messages and their opt-out
  history;
- :mod:`.bulk`: "Send to many";
- :mod:`.campaigns`: campaigns: the list, a campaign's page, create from a CSV upload;
- :mod:`.actions`: the send, refresh and retry actions the screens share;
- :mod:`.display`: badges, bubbles, error explanations and the status summary;
- :mod:`.dates`: dates and times, one way on every screen;
- :mod:`.guard`: the query strings every screen refuses.

Every send, retry and status refresh goes through :mod:`django_whatsapp.services` and needs the
``django_whatsapp.send_message`` permission. Importing this package registers the model admins.
"""

from . import campaigns, contacts, conversations, events, messages, templates

__all__ = ["campaigns", "contacts", "conversations", "events", "messages", "templates"]
