"""intaked: the front door of an IT helpdesk.

Mail (SMTP/LMTP, IMAP) and hotline calls come in through channel adapters (``intaked.channels``),
are captured as raw inbound items, parsed (``intaked.parsing``), threaded and routed
(``intaked.routing``) into one ticket store (``intaked.store``), with SLA deadlines from
``intaked.sla``. The daemon (``intaked.daemon``) runs it all on one asyncio loop.
"""

__version__ = "0.1.0"
