"""Everything Twilio, in one place (the phone edge of intaked).

- :mod:`~intaked.twilio.routes`: the table of every webhook path and its handler;
- :mod:`~intaked.twilio.server` (+ ``connections``, ``signature``): the webhook listener, its
  connection caps and time-outs, the signature check (twilio-python's ``RequestValidator``, the
  current and the previous auth token);
- the handlers, each a plain function of (context, engine, request) in one transaction:
  ``status_webhooks`` (page SMS and call statuses), ``page_webhooks`` + ``page_replies``
  (answered page calls, keypresses, SMS replies), ``hotline_webhooks`` (hotline calls),
  ``voicemail_webhooks`` (recording and transcription callbacks);
- ``twiml`` and ``hotline_twiml``: the TwiML, built with ``VoiceResponse``/``MessagingResponse``;
- :mod:`~intaked.twilio.client` (+ ``media``): the REST client, which implements the phone
  provider port (intaked/ports/phone.py) and is built once per process;
- :mod:`~intaked.twilio.dispatcher` (+ ``outcomes``, ``rate``): sends the outbox's SMS, calls and
  call cancels, telling the attempt listener it is given of every page attempt it moves.

This package may import hotline, paging, outbound, channels, store, config and ports; none of
those imports it (they reach Twilio through the port).
"""
