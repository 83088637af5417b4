"""Reading Prometheus metrics in tests as Prometheus does: the text format, parsed."""

from __future__ import annotations

import asyncio
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(url: str) -> Samples:
    """GET ``url`` (off the event loop) and parse it."""

    def get() -> str:
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/plain")
            return str(response.read().decode())

    return parse(await asyncio.to_thread(get))


def value(found: Samples, name: str, **labels: str) -> float | None:
    """The sample ``name{labels}`` (exactly these labels), or None."""
    return found.get((name, tuple(sorted(labels.items()))))
