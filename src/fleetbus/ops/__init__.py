"""Operating a fleet: status and alert thresholds. Internal; the CLI is its front."""
