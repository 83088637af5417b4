"""The transport: everything fleetbus says to NATS and JetStream goes through here.

Internal: import what you need from ``fleetbus``. The modules, bottom up:

- ``acks``: what the server confirms (``PubAck``, ``BatchAck``, ``PublishManyResult``);
- ``_natspy``: the one place that touches nats-py internals;
- ``backoff``: the one retry schedule every loop here uses;
- ``connection``: ``ConnectSettings`` and ``Connection`` (a client that reconnects forever
  and remembers what the server refused it);
- ``api``: the JetStream API as JSON in, JSON out;
- ``publish`` / ``batch``: persisted publishes that ride out elections, one by one or in
  atomic batches;
- ``consume``: one durable pull consumer, consumed correctly;
- ``reader``: reading a stream without consuming it.

This package imports nothing from here on purpose: ``fleetbus.errors`` needs ``acks``.
"""
