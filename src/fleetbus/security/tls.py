"""TLS for the embedded server: a local certificate authority, made once, kept in the data dir.

``fleetbus up --tls`` creates ``<data_dir>/tls/``: ``ca.pem`` (give it to clients),
``ca-key.pem``, ``server.pem`` and ``server-key.pem`` (keys 0600), the server certificate
valid for 127.0.0.1, ::1, localhost and the configured host. Clients of the embedded server
find ``ca.pem`` on their own; for an existing cluster pass ``--tls-ca`` (and ``--tls-cert`` /
``--tls-key`` for mutual TLS).

Needs the ``cryptography`` package: ``pip install 'fleetbus[tls]'``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetbus._files import write_private
from fleetbus.errors import FleetbusError
from fleetbus.natsconf import quote

__all__ = ["TLS_DIR", "TlsFiles", "ensure_local_ca", "render_tls", "tls_files"]

TLS_DIR = "tls"
_VALID = dt.timedelta(days=3650)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def tls_files(data_dir: str | Path) -> TlsFiles | None:
    """The data dir's TLS files, if ``fleetbus up --tls`` made them."""
    base = Path(data_dir).absolute() / TLS_DIR
    files = TlsFiles(base / "ca.pem", base / "server.pem", base / "server-key.pem")
    return files if all(p.exists() for p in (files.ca, files.cert, files.key)) else None


def ensure_local_ca(data_dir: str | Path, host: str = "127.0.0.1") -> TlsFiles:
    """The local CA and a server certificate for ``host`` (made on first use, then kept)."""
    existing = tls_files(data_dir)
    if existing is not None:
        return existing
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        raise FleetbusError(
            "TLS needs the cryptography package: pip install 'fleetbus[tls]'"
        ) from None
    base = Path(data_dir) / TLS_DIR
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = dt.datetime.now(dt.UTC)

    def name(common: str) -> Any:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fleetbus"),
                x509.NameAttribute(NameOID.COMMON_NAME, common),
            ]
        )

    ca_key = ec.generate_private_key(ec.SECP256R1())
    signing_only = x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=True,
        crl_sign=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        encipher_only=False,
        decipher_only=False,
    )
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("fleetbus local CA"))
        .issuer_name(name("fleetbus local CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(signing_only, critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    for address in {"127.0.0.1", "::1", host}:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError:
            names.append(x509.DNSName(address))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(host))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            # client auth too: in a cluster each node is the other's client on the routes
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    def pem_key(k: Any) -> bytes:
        data: bytes = k.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return data

    write_private(base / "ca-key.pem", pem_key(ca_key).decode())
    write_private(base / "server-key.pem", pem_key(key).decode())
    write_private(base / "server.pem", cert.public_bytes(serialization.Encoding.PEM).decode())
    write_private(base / "ca.pem", ca_cert.public_bytes(serialization.Encoding.PEM).decode())
    files = tls_files(data_dir)
    assert files is not None
    return files


def render_tls(files: TlsFiles, *, verify: bool = False, indent: str = "") -> str:
    """The server config's ``tls`` block: for client connections, or (``verify``, inside the
    ``cluster`` block) for routes, where each node must show a certificate of the local CA."""
    lines = [
        "tls {",
        f"  cert_file: {quote(files.cert)}",
        f"  key_file: {quote(files.key)}",
        f"  ca_file: {quote(files.ca)}",
        *(["  verify: true"] if verify else []),
        "  timeout: 2",
        "}",
    ]
    return "".join(f"{indent}{line}\n" for line in lines)
