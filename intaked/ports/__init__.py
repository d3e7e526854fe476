"""Ports: what intaked asks of the providers outside it, as ``typing.Protocol`` classes.

The domain packages (hotline, paging, outbound) depend on a port, never on a provider's client;
the daemon builds the one implementation per process (e.g. :class:`intaked.twilio.client.TwilioClient`
for :class:`intaked.ports.phone.PhoneProvider`, an SMTP mailer per sending loop for
:class:`intaked.ports.mail.MailRelay`) and passes it in. Tests pass a fake
(tests/support/fake_phone.py, tests/support/fake_relay.py). This package imports nothing of intaked.
"""
