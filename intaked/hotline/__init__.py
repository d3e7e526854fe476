"""The IT hotline: calls answered through Twilio become tickets (issue 7).

- :mod:`intaked.hotline.calls`: the core, sync functions that run inside one transaction each
  (record a call, its menu choice, its voicemail, its end), used by the webhooks and by
  reconciliation;
- :mod:`intaked.hotline.caller_acks`: the acknowledgement to the caller (SMS to a mobile caller id, the
  mail acknowledgement when the directory knows the caller's address);
- :mod:`intaked.hotline.recordings`, :mod:`intaked.hotline.callbacks`, :mod:`intaked.hotline.fetcher`:
  voicemail: the recording and transcription callbacks, and the download of the recording;
- :mod:`intaked.hotline.reconcile`: calls Twilio knows of that our webhooks missed.

The webhooks themselves, and what the caller hears (TwiML), are in intaked/twilio/
(``hotline_webhooks``, ``voicemail_webhooks``, ``hotline_twiml``); Twilio is reached through the
phone provider port (intaked/ports/phone.py).
"""
