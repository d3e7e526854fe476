"""Outbound side effects: the outbox (written in the cause's transaction), the dispatcher that
sends it, and what is sent: acknowledgements and notices (``compose``), never to a machine
(``loops``)."""
