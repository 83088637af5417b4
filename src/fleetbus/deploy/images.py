"""The container images a deployment runs, named once for every target (Kubernetes, compose).

``FLEETBUS_IMAGE`` is what the repository's ``Dockerfile`` builds
(``docker build -t fleetbus:0.1.0 .``): fleetbus at this version, ``fleetbus`` as its
entrypoint. Agents run an image built ``FROM`` it with their own code added.
"""

from __future__ import annotations

from fleetbus._version import __version__

__all__ = ["FLEETBUS_IMAGE", "NATS_IMAGE"]

FLEETBUS_IMAGE = f"fleetbus:{__version__}"
NATS_IMAGE = "nats:2.15-alpine"
"""The nats-server release fleetbus is tested with; alpine, for a shell in healthchecks."""
