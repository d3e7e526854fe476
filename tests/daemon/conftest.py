"""Fixtures of the daemon tests that need a phone: the fake phone network and Prism in front of
it, as the Twilio tests have them (tests/twilio/conftest.py)."""

from __future__ import annotations

from tests.twilio import conftest as twilio_fixtures

phone = twilio_fixtures.phone
_phone_session = twilio_fixtures._phone_session
twilio_api_url = twilio_fixtures.twilio_api_url
