"""Deployment targets: render a fleet into what a platform applies. Pure rendering only.

``k8s`` (with ``k8s_values``, ``k8s_manifests``, ``k8s_readme``) writes the Kubernetes
directory of ``fleetbus deploy k8s``. Internal: the CLI is the front."""

from fleetbus.deploy.k8s import render_k8s
from fleetbus.deploy.k8s_values import (
    ADMIN,
    AuthorizationRenderer,
    K8sOptions,
    RenderedFile,
    basic_authorization,
    credentials_from_mapping,
    fleet_yaml,
    helm_values,
    make_credential,
    placeholder_credentials,
)

__all__ = [
    "ADMIN",
    "AuthorizationRenderer",
    "K8sOptions",
    "RenderedFile",
    "basic_authorization",
    "credentials_from_mapping",
    "fleet_yaml",
    "helm_values",
    "make_credential",
    "placeholder_credentials",
    "render_k8s",
]
