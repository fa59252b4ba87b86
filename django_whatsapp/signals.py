"""Signals sent by :mod:`django_whatsapp.services`, :mod:`django_whatsapp.inbound`,
:mod:`django_whatsapp.optout` and the campaigns. The sender is the ``Message`` class, except for
:data:`campaign_paused` (the ``Campaign`` class).

Each is sent once per real event, after the database change it reports.
"""

from django.dispatch import Signal

#: Sent just before a message's request goes to the gateway.
#: Arguments: ``message`` (the Message, status ``sending``), ``payload`` (the request body as a
#: dict, before JSON encoding; receivers may read it, changing it is not supported).
message_sending = Signal()

#: Sent when the gateway took a message (status ``accepted``, ``provider_message_id`` set).
#: Arguments: ``message``.
message_sent = Signal()

#: Sent when a send did not succeed: the message is ``not_sent`` (refused, or never reached the
#: gateway) or ``unknown`` (the request went out and no answer came).
#: Arguments: ``message``, ``error`` (the :class:`~django_whatsapp.exceptions.WhatsAppError`).
message_failed = Signal()

#: Sent whenever a report changes a message's status.
#: Arguments: ``message``, ``old_status``, ``new_status`` (status names) and ``event`` (the
#: :class:`~django_whatsapp.models.StatusEvent` that recorded the report).
status_changed = Signal()

#: Sent when a customer's message arrives at the inbound endpoint and is stored (once per message:
#: the same message delivered again is a duplicate and sends nothing).
#: Arguments: ``message`` (the inbound Message: ``direction`` ``inbound``, the customer's number
#: in ``destination_addr``) and ``report`` (the
#: :class:`~django_whatsapp.models.InboundReport` holding the raw request).
message_received = Signal()

#: Sent when a contact opts out (an inbound opt-out keyword, or an operator in the admin), once:
#: a contact already opted out sends nothing.
#: Arguments: ``contact`` (the :class:`~django_whatsapp.models.Contact`, ``opted_out_at`` set),
#: ``message`` (the inbound Message that said the keyword, or ``None`` when an operator did it)
#: and ``user`` (the operator, or ``None``).
contact_opted_out = Signal()

#: Sent when an opted-out contact opts back in (an inbound opt-in keyword, or an operator).
#: Arguments: ``contact``, ``message`` (the inbound Message, or ``None``) and ``user``.
contact_opted_in = Signal()

#: Sent when a running (or scheduled) campaign is paused: by the app, when the gateway refused
#: the account's balance (402, code 3) or key (401/403), or by an operator.
#: Sender: the ``Campaign`` class. Arguments: ``campaign`` (the
#: :class:`~django_whatsapp.models.Campaign`, status ``paused``) and ``reason`` (the
#: ``pause_reason`` the app gave, blank when an operator paused it).
campaign_paused = Signal()
