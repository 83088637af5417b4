"""Per-role credentials and least-privilege permissions, generated from the fleet file.

See docs/security.md for what each role may do and why.
"""

from fleetbus.security.credentials import (
    AUTH_DIR,
    Credential,
    auth_dir,
    ensure_credentials,
    load_credential,
)
from fleetbus.security.permissions import ADMIN, Permissions, inbox_prefix, role_permissions
from fleetbus.security.render import render_authorization

__all__ = [
    "ADMIN",
    "AUTH_DIR",
    "Credential",
    "Permissions",
    "auth_dir",
    "ensure_credentials",
    "inbox_prefix",
    "load_credential",
    "render_authorization",
    "role_permissions",
]
