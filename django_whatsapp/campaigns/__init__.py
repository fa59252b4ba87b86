"""Campaigns: one content to a large audience, sent by task-framework workers in chunks.

- :mod:`.models`: ``Campaign``, its ``CampaignChunk`` work units and ``CampaignRejection`` rows;
- :mod:`.audience`: the audience streamed in (an iterable or a CSV file), validated row by row;
- :mod:`.engine`: leasing a chunk, claiming its messages in one statement, sending them over one
  pooled session, recording the outcomes in batches;
- :mod:`.control`: start, pause, resume, cancel, progress and the funnel.

The services (:mod:`django_whatsapp.services`) re-export what users call; the tasks
(:mod:`django_whatsapp.tasks`) run the engine.
"""
