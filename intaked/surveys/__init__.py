"""Satisfaction surveys (issue 18; docs/service-levels.md, "Satisfaction surveys").

When a ticket closes (the auto-close sweeper, a tool writing ``status``), its requester gets a
one-question survey through the outbox, in the transaction that closed it; answers by mail
(intercepted by intake before threading) and by SMS (the inbound SMS webhook) set the ticket's
``satisfaction_*`` columns and never reopen a ticket. One module per seam:

- ``rows.py``: the ``surveys`` and ticket rows and the event builder the others share;
- ``texts.py``: what a survey and its clarification say (mail templates, SMS text);
- ``sending.py``: who gets a survey, by which channel, and its outbox row;
- ``answers.py``: reading a score and a comment out of an answer (pure);
- ``answering.py``: storing an answer (valid, invalid, late, automatic) and the one clarification;
- ``inbound.py``: recognising answers: mail that replies to a survey, an SMS with a survey's code.

It sits below ``sla/`` (whose sweeper and tracker call it when a ticket closes) and above
``outbound/``; ``intake/`` and ``twilio/`` call it for answers.
"""
