"""Mutual TLS for internal gRPC: server credentials, client channels, from ``BEATFLOW_GRPC_TLS_*`` settings.

With ``grpc_tls_cert`` and ``grpc_tls_key`` set, a server listens with TLS and,
when ``grpc_tls_ca`` is set too, accepts only clients whose certificate that CA
signed (mTLS). A client with the same three settings verifies the server
against the CA and presents its own certificate. Nothing set: plaintext (the
embedded stack on loopback). See deploy/README.md for the trust model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from beatflow.common.settings import CommonSettings


def _read(path: Path | None) -> bytes | None:
    return Path(path).read_bytes() if path else None


def tls_enabled(settings: CommonSettings) -> bool:
    if bool(settings.grpc_tls_cert) != bool(settings.grpc_tls_key):
        raise ValueError("set both BEATFLOW_GRPC_TLS_CERT and BEATFLOW_GRPC_TLS_KEY, or neither")
    return bool(settings.grpc_tls_cert)


def server_credentials(settings: CommonSettings) -> grpc.ServerCredentials | None:
    """TLS credentials for a server, requiring client certificates when a CA is configured; None: plaintext."""
    if not tls_enabled(settings):
        return None
    ca = _read(settings.grpc_tls_ca)
    key, cert = _read(settings.grpc_tls_key), _read(settings.grpc_tls_cert)
    assert key is not None and cert is not None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


def channel_credentials(settings: CommonSettings) -> grpc.ChannelCredentials | None:
    """Credentials for a client: verify servers against the CA, present our certificate; None: plaintext."""
    if not settings.grpc_tls_ca and not tls_enabled(settings):
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=_read(settings.grpc_tls_ca),
        private_key=_read(settings.grpc_tls_key),
        certificate_chain=_read(settings.grpc_tls_cert),
    )


def _options(settings: CommonSettings, options: list[tuple[str, Any]] | None) -> list[tuple[str, Any]]:
    opts = list(options or [])
    if settings.grpc_tls_server_name:
        opts.append(("grpc.ssl_target_name_override", settings.grpc_tls_server_name))
    return opts


def aio_channel(
    target: str,
    settings: CommonSettings,
    options: list[tuple[str, Any]] | None = None,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
) -> grpc.aio.Channel:
    creds = channel_credentials(settings)
    chosen = list(interceptors) or None
    if creds is None:
        return grpc.aio.insecure_channel(target, options=options, interceptors=chosen)
    return grpc.aio.secure_channel(target, creds, options=_options(settings, options), interceptors=chosen)


def sync_channel(target: str, settings: CommonSettings, options: list[tuple[str, Any]] | None = None) -> grpc.Channel:
    creds = channel_credentials(settings)
    if creds is None:
        return grpc.insecure_channel(target, options=options)
    return grpc.secure_channel(target, creds, options=_options(settings, options))
