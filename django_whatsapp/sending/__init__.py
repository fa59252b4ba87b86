"""One message's way to the gateway and back: claim it, make it ready, submit it, record the
outcome. Each step is a room of its own:

============================ ===================================================================
:mod:`.claim`                ``draft``/``queued`` -> ``sending`` for exactly one caller: the
                             rule (:data:`SENDABLE`, ``claimable``) and the claims of one, many
                             or a campaign's batch
:mod:`.prepare`              a claimed message made ready, or refused or made to wait, before
                             any request (:func:`prepare_claimed`)
:mod:`.clients`              the gateway clients: one per thread, or one pooled for many threads
:mod:`.record`               one send's outcome recorded, and the reaction to a fault
:mod:`.batch`                a batch's outcomes recorded together (bulk sends, campaigns)
:mod:`.answers`              the gateway's answers and errors as the database keeps them
:mod:`.single`               one message now (:func:`send_now`), the opt-out's confirmation
============================ ===================================================================

:func:`claim_for_sending` and :func:`record_send` are the two halves of a send that run where the
database work is done; ``client.send`` between them may run in another thread (bulk sends and
campaigns). :func:`send_now` joins the three for one message. The claim is a conditional UPDATE,
so a message is submitted at most once however many callers ask for it concurrently. The raw
statements that claim and record many messages at once are in :mod:`django_whatsapp.fastpaths`,
each beside the rule it must equal.

Every name below is importable from ``django_whatsapp.sending`` as before the rooms were split.
"""

from .answers import (
    MAX_ERROR_MESSAGE,
    MAX_KEPT_DEPTH,
    error_fields,
    error_payload,
    storable_answer,
    storable_text,
)
from .batch import Recorded, outcome_of, record_accepted, record_outcomes, requeue
from .claim import (
    SENDABLE,
    Claim,
    claim_batch,
    claim_campaign,
    claim_for_sending,
    claim_messages,
    claimable,
    due,
    ensure_campaign_running,
    move_status,
)
from .clients import get_client, pooled_client
from .prepare import OUTSIDE_HOURS, Prepared, many_callback_url, prepare_claimed
from .record import react, record_outcome, record_send
from .single import send_now, send_opt_out_confirmation

__all__ = [
    "MAX_ERROR_MESSAGE",
    "MAX_KEPT_DEPTH",
    "OUTSIDE_HOURS",
    "SENDABLE",
    "Claim",
    "Prepared",
    "Recorded",
    "claim_batch",
    "claim_campaign",
    "claim_for_sending",
    "claim_messages",
    "claimable",
    "due",
    "ensure_campaign_running",
    "error_fields",
    "error_payload",
    "get_client",
    "many_callback_url",
    "move_status",
    "outcome_of",
    "pooled_client",
    "prepare_claimed",
    "react",
    "record_accepted",
    "record_outcome",
    "record_outcomes",
    "record_send",
    "requeue",
    "send_now",
    "send_opt_out_confirmation",
    "storable_answer",
    "storable_text",
]
