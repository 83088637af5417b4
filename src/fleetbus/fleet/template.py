"""The fleet file ``fleetbus init`` writes: the seed's topology, with its broken settings fixed.

It is also the built-in fleet when no fleet file exists, so the two never drift apart. Its
first line points editors (through the YAML language server) at ``fleet.schema.json``, the
schema ``fleetbus init`` writes beside it (``fleetbus.fleet.jsonschema``).
"""

from __future__ import annotations

__all__ = ["SEED_FLEET_YAML"]

SEED_FLEET_YAML = """\
# yaml-language-server: $schema=fleet.schema.json
# fleetbus fleet file: roles, streams, consumers, permissions and alert thresholds.
# Reference: docs/fleet-file.md. Validate with `fleetbus check`; apply with `fleetbus provision`.
# Subjects are relative to the prefix: "agents.>" means "genbrain.agents.>".
# Durations read as 500ms, 30s, 5m, 2h, 7d; sizes as 512MB, 2GB, 1GiB.
version: 1
prefix: genbrain

server:                       # the embedded nats-server that `fleetbus up` runs
  host: 127.0.0.1
  port: 4222
  # monitor_port: 8222       # HTTP monitoring: off unless set (it lists every connection)
  data_dir: .fleetbus
  max_memory: 2GB             # seed: jetstream { max_mem: 2GB }
  max_file: 50GB              # seed: jetstream { max_file: 50GB }
  sync_always: false          # true: fsync every write (slower; survives power loss on one node)
  cluster:
    name: agent-cluster       # seed: cluster { name: agent-cluster }
    size: 1                   # `fleetbus up --cluster 3` runs the seed's three nodes

streams:
  AGENT_COMMS:
    description: Direct messages, task assignments and meeting invitations per agent
    subjects: ["agents.>"]
    # seed: limits, 7d, 1000 per subject, discard new. Processed messages counted against the
    # cap for a week, so a busy sender -> role pair was refused although its role kept up.
    # interest: a message is kept until the consumer it is for acknowledges it, then removed.
    # Nothing unprocessed is dropped (no max_age); processed messages do not pile up.
    # (Audit trail: every task's records stay in TASKS; dead letters in AGENT_DLQ.)
    retention: interest
    # At most 1000 *unprocessed* messages per sender -> role subject
    # (agents.backend.tasks.cto): past that the sender is refused (error 10077) until the
    # role catches up: backpressure instead of loss. Processed messages no longer count.
    max_msgs_per_subject: 1000
    discard: new
    discard_new_per_subject: true
    storage: file
    replicas: 3               # one embedded node: provisioned as 1 replica, with a warning
    duplicate_window: 1h      # the same task id assigned twice within 1h is stored once
    # max_consumers: left out, fleetbus sizes it from the fleet (its consumers + 100): the
    # server's own default would cap every stream at 1000 consumers, 500 roles here.

  EVENTS:
    description: System events, fanned out to every role that subscribes
    subjects: ["events.>"]
    retention: limits
    max_msgs_per_subject: 5000
    max_age: 30d
    storage: file
    replicas: 3
    discard: old              # events are history: the oldest go first, as in the seed
    # Fleet.emit_many / publish_many store up to 1000 events per round trip, all or none
    # (atomic batch publish, nats-server 2.12+); without it they fall back to one ack each.
    allow_atomic_publish: true

  TASKS:
    description: Each task's lifecycle updates (accepted, progress, completed, failed)
    subjects: ["tasks.>"]
    # seed: work-queue. A work queue deletes an update once one consumer acks it, so the
    # assigner and a dashboard cannot both see it, and it refuses overlapping consumers.
    # Updates are fan-out: limits retention with an age limit.
    retention: limits
    max_age: 7d
    max_msgs_per_subject: 200
    storage: file
    replicas: 3
    discard: old
    # A redelivered task repeats its updates: dropped as duplicates within this window, so
    # it covers the longest task_budget plus its ack wait. (A task's outcome does not depend
    # on it: the first outcome stored stands, however late another attempt comes.)
    duplicate_window: 1h

  TASK_INDEX:
    description: The task list (fleetbus tasks, the dashboard), each task's latest state
    subjects: ["index.>"]     # index.{role}.{assigner}.{task id}: one entry per task
    retention: limits
    max_msgs_per_subject: 1
    max_age: 7d
    storage: file
    replicas: 3
    discard: old

  TASK_MEMO:
    description: Results of task steps (task.step), so a retried attempt does not pay twice
    subjects: ["memo.>"]      # memo.{role}.{assigner}.{task id}.{step}: one value per key
    retention: limits
    max_msgs_per_subject: 1
    max_age: 7d
    max_msgs: 100000          # the oldest go first (a max_bytes would reserve that much disk)
    storage: file
    replicas: 3
    discard: old

  AGENT_PRESENCE:
    description: Which agent processes run, where, holding which task (fleetbus agents)
    subjects: ["presence.>"]  # presence.{role}.{instance}: renewed every 3s by each agent
    retention: limits
    max_msgs_per_subject: 1
    max_age: 1h               # a crashed agent's last record shows it offline for an hour
    storage: memory           # leases, not history: a restarted server starts empty
    replicas: 3
    discard: old

  AGENT_DLQ:
    description: Dead letters, with where each came from and why it died
    subjects: ["dlq.>"]
    dead_letters: true        # also captures the server's max-deliveries / terminated advisories
    retention: limits
    max_age: 30d
    storage: file
    replicas: 3
    # No message or byte cap and discard old: a new dead letter is never refused for room.
    # Should the disk fill, the message it is for stays where it was and is tried again.
    discard: old

# Each role gets durable pull consumers named ROLE_KIND (BACKEND_TASKS, BACKEND_INBOX, ...):
#   tasks     agents.{role}.tasks      one task at a time by default
#   inbox     agents.{role}.inbox
#   meetings  agents.{role}.meetings   meeting invitations
#   events    events.{filters}         the role's event subscriptions
#   updates   tasks.*.updates          every task's lifecycle (for overseers)
# Permissions: send_to lists the roles whose inbox/tasks/meetings this role may publish to.
# seed: backend could publish only under genbrain.agents.backend.>, so it could neither message
# cso nor ask for a security review; genbrain.tasks.> let any agent forge any task's updates.
roles:
  ceo:
    description: Sets direction and hands features to the CTO
    oversight: true           # seed: publish/subscribe genbrain.> — watches every inbox
    send_to: ["*"]
    publish: ["events.>"]
    task_budget: 30m
    tasks: {max_deliver: 3, max_ack_pending: 1, ack_wait: 4s}
    inbox: {max_deliver: 5, max_ack_pending: 5, ack_wait: 4s}

  cto:
    description: Splits features into tasks for the engineering agents
    send_to: [ceo, backend, devops, cso]
    publish: ["events.>"]
    task_budget: 30m
    tasks: {max_deliver: 3, max_ack_pending: 1, ack_wait: 4s}
    inbox: {max_deliver: 5, max_ack_pending: 5, ack_wait: 4s}
    updates: {deliver: new}   # seed: nats sub "genbrain.tasks.*.updates"

  backend:
    description: Implements API and service changes
    send_to: [cto, devops, cso]
    publish: ["events.>"]
    # seed: the Go worker used AckWait 30m "tasks can take a while": a crashed agent's task
    # (and, at max_ack_pending 1, the queue behind it) then waited 30 minutes. ack_wait is a
    # lease: the runtime renews it every ack_wait/3 while a handler runs (up to task_budget),
    # so a task of a crashed agent goes to a peer within ack_wait (4s).
    task_budget: 30m
    tasks: {deliver: all, max_deliver: 3, max_ack_pending: 1, ack_wait: 4s}
    inbox: {deliver: all, max_deliver: 5, max_ack_pending: 5, ack_wait: 4s}

  devops:
    description: Deploys services and watches deployments
    send_to: [cto, backend, cso]
    publish: ["events.>"]
    task_budget: 30m
    tasks: {max_deliver: 3, max_ack_pending: 1, ack_wait: 4s}
    inbox: {max_deliver: 5, max_ack_pending: 5, ack_wait: 4s}
    events:                   # DEVOPS_EVENTS
      filters: ["deployment.>"]
      deliver: all

  cso:
    description: Audits security and reviews code for vulnerabilities
    send_to: [cto, backend, devops]
    publish: ["events.>"]
    task_budget: 30m
    tasks: {max_deliver: 3, max_ack_pending: 1, ack_wait: 4s}
    inbox: {max_deliver: 5, max_ack_pending: 5, ack_wait: 4s}
    events:                   # CSO_EVENTS
      filters: [">"]
      deliver: all

alerts:                       # `fleetbus status` exits 1 when one is crossed
  consumer_pending: 100       # messages waiting for a consumer: the agent is stuck or overwhelmed
  ack_pending: 50             # delivered but not yet acknowledged
  dead_letters_growing: true  # any new dead letter since the last check
  storage_percent: 80         # a stream's bytes or messages against its limit
  replicas_out_of_sync: true
"""
