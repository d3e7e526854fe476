"""What an operator watches: Prometheus metrics and the health endpoints of the front process.

- ``figures``: the figures every process leaves in the shared store (the ledger, the outbox,
  pages, calls, SLA warnings and breaches, IMAP polls, workers' heartbeats), counted by short
  read-only queries;
- ``collector``: those figures as a Prometheus collector, read at each scrape;
- ``counters``: counters only the front sees (451 replies, its database errors), in its memory;
- ``readiness``: the readiness checks (database, schema, workers' heartbeats, IMAP mailboxes);
- ``server``: the ``[metrics]`` listener (``/metrics``, ``/healthz``, ``/readyz``), an
  ``aiohttp`` app on the front's event loop whose database work runs on the daemon's threads.

It imports the store and the settings, never the edges (channels, twilio); ``intaked status``
(intaked/commands/status.py) prints the same checks and figures.
"""
