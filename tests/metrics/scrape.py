"""Reading the metrics listener over HTTP, as Prometheus and a load balancer would."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def get(port: int, path: str) -> tuple[int, str, str]:
    """(status, content type, body) of ``GET path``; an HTTP error status is returned, not raised."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.headers.get("Content-Type", ""), answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()


def scrape(port: int) -> Samples:
    """Every sample of ``/metrics``, parsed by prometheus_client's own parser."""
    status, content_type, body = get(port, "/metrics")
    assert status == 200 and content_type.startswith("text/plain"), (status, content_type)
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample ``name{labels}``; 0 when absent (a group nobody is in yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str) -> float:
    """The sum of every series of ``name``."""
    return sum(v for (n, _), v in samples.items() if n == name)


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    status, content_type, body = get(port, "/readyz")
    assert content_type.startswith("application/json"), content_type
    answer: dict[str, Any] = json.loads(body)
    return status, answer


def checks(answer: dict[str, Any]) -> dict[str, bool]:
    return {check["name"]: check["passed"] for check in answer["checks"]}
