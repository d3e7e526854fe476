"""The schema of ``[metrics]``: the listener that serves Prometheus metrics and the health
endpoints (``/metrics``, ``/healthz``, ``/readyz``)."""

from __future__ import annotations

from typing import Annotated

from intaked.config.fields import Section, checked_by, split_listen

DEFAULT_METRICS_LISTEN = "127.0.0.1:9464"


class MetricsSettings(Section):
    """``[metrics]``: the metrics and health listener of the front process."""

    listen: Annotated[str, checked_by(split_listen, optional=True)] = DEFAULT_METRICS_LISTEN  # "": off

    @property
    def enabled(self) -> bool:
        return bool(self.listen)

    @property
    def host_port(self) -> tuple[str, int]:
        return split_listen(self.listen)
