"""Whether tracing is on, as a fresh process sees it: OpenTelemetry's provider can be set once
per process, and this suite's telemetry tests set one for the whole run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SET_LATER = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from fleetbus.telemetry import tracing

assert not tracing.active()
assert not tracing.active()  # asked again, without the environment
trace.set_tracer_provider(TracerProvider())
assert tracing.active()  # a provider set after the first question is seen at once
"""

FROM_ENVIRONMENT = """
from fleetbus.telemetry import tracing

assert tracing.active()  # the provider the environment names, loaded by the first question
"""

NAMED_LATER = """
import os
from opentelemetry import trace
from fleetbus.telemetry import tracing

assert not tracing.active()
os.environ["OTEL_PYTHON_TRACER_PROVIDER"] = "sdk_tracer_provider"
trace.get_tracer("app")  # the application's first tracer loads it
assert tracing.active()
"""


@pytest.mark.parametrize(
    ("script", "provider"),
    [(SET_LATER, None), (FROM_ENVIRONMENT, "sdk_tracer_provider"), (NAMED_LATER, None)],
    ids=["set-later", "from-environment", "named-later"],
)
def test_a_configured_tracer_provider_turns_tracing_on(script: str, provider: str | None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if provider is not None:
        env["OTEL_PYTHON_TRACER_PROVIDER"] = provider
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
