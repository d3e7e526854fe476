"""Fixtures of the hotline tests: settings with a hotline number, a directory, a QRC policy; the
hotline webhooks on a real listener with the fake phone network pointed at them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from intaked.config import Settings
from intaked.paging.outcomes import attempt_updated
from intaked.ports.phone import INCOMING_PATH, STATUS_PATH
from intaked.twilio.routes import HOTLINE as HOTLINE_ROUTES
from intaked.twilio.routes import build_routes
from tests.support.phone import FakePhoneNetwork
from tests.support.webhookd import RunningWebhooks, running_webhooks
from tests.twilio import conftest as twilio_fixtures
from tests.twilio.conftest import PUBLIC_URL, twilio_settings

# The Twilio tests' fixtures: a migrated store, the fake phone network, Prism in front of it.
engine = twilio_fixtures.engine
phone = twilio_fixtures.phone
_phone_session = twilio_fixtures._phone_session
twilio_api_url = twilio_fixtures.twilio_api_url
prism_mock = twilio_fixtures.prism_mock

HOTLINE = "+886225551234"
DESK = "+886225550000"
CHEN = "+886911111111"  # QRC duty
MOBILE_KNOWN = "+886912345678"  # 王小明 in the directory, wang@example.com
LANDLINE_KNOWN = "+886223456789"  # 林美玲 in the directory, lin@example.com
MOBILE_UNKNOWN = "+886987654321"
LANDLINE_UNKNOWN = "+886227654321"
SECURITY_LIST = "soc@example.com"

DIRECTORY = (
    "name,email,phone,department,site\n"
    "王小明,wang@example.com,0912345678,製造部,竹科\n"
    "林美玲,lin@example.com,02-2345-6789,財務部,台北\n"
)


def hotline_settings(
    tmp_path: Path, api_base_url: str = "https://api.twilio.com", **overrides: Any
) -> Settings:
    """Paging on, the hotline on ``HOTLINE``, the directory above, a P1 policy paging CHEN."""
    directory = tmp_path / "directory.csv"
    directory.write_text(DIRECTORY, encoding="utf-8")
    sections: dict[str, Any] = {
        "hotline": {"numbers": [HOTLINE], "security_notify": SECURITY_LIST},
        "directory": {"path": str(directory)},
        "outbound_mail": {"from_address": "helpdesk@example.com"},
        "people": {"chen": {"phone": CHEN}},
        "oncall": {"qrc_duty": {"people": ["chen"]}},
        "paging": {
            "policies": {"P1": {"repeat": 1, "steps": [{"targets": [{"oncall": "qrc_duty"}]}]}},
        },
    }
    for section, values in overrides.items():
        sections.setdefault(section, {}).update(values)
    return twilio_settings(api_base_url, **sections)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return hotline_settings(tmp_path)


@pytest.fixture
def hotline(settings: Settings, engine: Engine, phone: FakePhoneNetwork) -> Iterator[RunningWebhooks]:
    """The hotline's webhooks on a real listener; the fake network's incoming calls reach them."""
    routes = build_routes(settings, attempt_updated, [HOTLINE_ROUTES])
    with running_webhooks(settings, engine, routes) as running:
        phone.deliver_to(PUBLIC_URL, running.base_url)
        phone.inbound_voice_url = PUBLIC_URL + INCOMING_PATH
        phone.hotline_status_url = PUBLIC_URL + STATUS_PATH
        yield running
