"""The table of Twilio webhooks (intaked/twilio/routes.py): every path we give Twilio has exactly
one handler, and the hotline's are served only when the hotline is on."""

from __future__ import annotations

import pytest

from intaked.paging.outcomes import attempt_updated
from intaked.ports import phone
from intaked.twilio.routes import HOTLINE, TABLE, build_routes
from tests.twilio.conftest import twilio_settings

PATHS = {value for name, value in vars(phone).items() if name.endswith("_PATH")}


def test_every_webhook_path_has_exactly_one_handler() -> None:
    routed = [route.path for route in TABLE]
    assert sorted(routed) == sorted(PATHS)
    assert len(set(routed)) == len(routed)


def test_the_hotlines_webhooks_are_served_only_with_a_hotline_number() -> None:
    hotline_paths = {route.path for route in TABLE if route.group == HOTLINE}
    without = build_routes(twilio_settings(), attempt_updated)
    assert set(without.handlers) == PATHS - hotline_paths
    with_hotline = build_routes(
        twilio_settings(hotline={"numbers": ["+886225551234"]}, directory={}), attempt_updated
    )
    assert set(with_hotline.handlers) == PATHS


def test_an_unknown_group_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown webhook groups"):
        build_routes(twilio_settings(), attempt_updated, ["pager"])
