"""Shared test setup. The ``nats_server`` / ``nats_url`` fixtures come from fleetbus's own
pytest plugin (``fleetbus.testing.plugin``), loaded through its entry point."""
