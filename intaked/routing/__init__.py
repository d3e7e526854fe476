"""Routing: which ticket an inbound message belongs to, and what a new ticket is about.

* :mod:`.reply_threading` - replies join their tickets (In-Reply-To/References, the subject's tag);
* :mod:`.rules` - routing rules as data (``[[routing.rules]]``): category, team, suggested priority;
* :mod:`.directory` - the employee directory CSV (requester's name, phone, department, site);
* :mod:`.authres` - the ``Authentication-Results`` parser (RFC 8601);
* :mod:`.trust` - is a suggested priority trusted enough to page at once;
* :mod:`.decide` - all of it for one new report: the ticket's routing columns and ``routed`` event;
* :mod:`.checks` - what ``intaked check-config`` notes about routing, the directory and trust.

The commands ``intaked rules test`` and ``intaked directory lookup`` are in :mod:`intaked.commands`.
"""
