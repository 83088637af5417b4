"""Deployment targets: render a fleet into what a platform applies. Pure rendering only."""

from fleetbus.deploy.k8s import (
    ADMIN,
    AuthorizationRenderer,
    Credentials,
    K8sOptions,
    RenderedFile,
    basic_authorization,
    credentials_from_mapping,
    fleet_yaml,
    helm_values,
    placeholder_credentials,
    render_k8s,
)

__all__ = [
    "ADMIN",
    "AuthorizationRenderer",
    "Credentials",
    "K8sOptions",
    "RenderedFile",
    "basic_authorization",
    "credentials_from_mapping",
    "fleet_yaml",
    "helm_values",
    "placeholder_credentials",
    "render_k8s",
]
