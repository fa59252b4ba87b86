"""Where a database does a rule's work faster: the raw statements, each paired with the Python
rule it must equal.

Every rule of the app reads once, in Python, in its own room; some of them also run here as one
raw statement, because that statement does the same work in fewer round trips (PostgreSQL's
``UPDATE ... RETURNING`` with ``WITH`` steps, arrays bound as one parameter each, a PL/pgSQL
function planned once per connection). Each module names its rule, says what the statement
saves, and lists the differences that do not count (none changes what is stored).
``tests/test_fastpaths.py`` holds every pair equal on SQLite and on PostgreSQL with Hypothesis,
including a message that moved meanwhile (a callback or a cancel settled it between the claim and
the record) and a contact another process changed between two of the customer's messages.

=========================== ==================================================================
Module                      The rule it equals (in Python) and where it runs
=========================== ==================================================================
:mod:`.report`              :func:`django_whatsapp.status_rule.apply_by_rule` (one report) and
                            each report in turn (a batch): PostgreSQL, one statement each
:mod:`.by_uuid`             the callback's first report: ``find_message`` and
                            :func:`~django_whatsapp.status_rule.apply_by_rule`; PostgreSQL,
                            the function of migration 0008 called by one statement
:mod:`.accept`              :func:`django_whatsapp.sending.record_send` of each accepted send:
                            PostgreSQL one statement, other databases one UPDATE and one INSERT
:mod:`.claim`               :func:`django_whatsapp.sending.claim.claimable` and
                            :data:`~django_whatsapp.sending.SENDABLE`: every database, one
                            ``UPDATE ... RETURNING`` (``SKIP LOCKED`` on PostgreSQL)
:mod:`.contact`             :func:`django_whatsapp.window.record_inbound_by_rule`: PostgreSQL
                            and SQLite, one ``INSERT ... ON CONFLICT DO UPDATE``
=========================== ==================================================================

Their statements run in :func:`.binding.server_bound_cursor`: on PostgreSQL with psycopg 3 the
parameters go apart from the text (Django quotes them into it by default).

This room sits just above the models: it imports nothing of the app but the models, and takes
every status, rank and code from its caller, so the rules stay the one place that decides.
"""
