"""Internal gRPC over mutual TLS: only clients holding a certificate from the deployment's CA get in."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from beatflow.common import grpctls, healthcheck
from beatflow.common.grpcserver import GrpcServer, create_grpc_server
from beatflow.common.settings import CommonSettings


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _issue(
    directory: Path, cn: str, ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None
) -> tuple[Path, Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A key and certificate (self-signed CA when ``ca`` is None) as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca[1].subject if ca else _name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if ca is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(cn), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = builder.sign(ca[0] if ca else key, hashes.SHA256())
    key_path, cert_path = directory / f"{cn}.key", directory / f"{cn}.crt"
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path, key, cert


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, CommonSettings]:
    """Settings for a server, a trusted client, and a client with a certificate from another CA."""
    _, ca_path, ca_key, ca_cert = _issue(tmp_path, "beatflow-ca", None)
    ca = (ca_key, ca_cert)
    server_key, server_cert, _, _ = _issue(tmp_path, "vcs", ca)
    client_key, client_cert, _, _ = _issue(tmp_path, "gateway", ca)
    rogue_dir = tmp_path / "rogue"
    rogue_dir.mkdir()
    _, _, rogue_ca_key, rogue_ca_cert = _issue(rogue_dir, "rogue-ca", None)
    rogue_key, rogue_cert, _, _ = _issue(rogue_dir, "gateway", (rogue_ca_key, rogue_ca_cert))
    common = {"grpc_tls_ca": ca_path, "grpc_tls_server_name": "vcs"}
    return {
        "server": CommonSettings(port=0, grpc_tls_cert=server_cert, grpc_tls_key=server_key, grpc_tls_ca=ca_path),
        "client": CommonSettings(grpc_tls_cert=client_cert, grpc_tls_key=client_key, **common),
        "no_cert": CommonSettings(**common),
        "rogue": CommonSettings(grpc_tls_cert=rogue_cert, grpc_tls_key=rogue_key, **common),
    }


@pytest.fixture
async def server(pki: dict[str, CommonSettings]) -> AsyncIterator[GrpcServer]:
    gs = create_grpc_server(pki["server"], [])
    await gs.start()
    await gs.set_serving(True)
    yield gs
    await gs.stop(0)


async def _check(target: str, settings: CommonSettings | None) -> grpc.StatusCode | int:
    channel = grpctls.aio_channel(target, settings) if settings else grpc.aio.insecure_channel(target)
    try:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        return int(reply.status)
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    finally:
        await channel.close()


async def test_only_clients_with_a_certificate_from_the_ca_are_served(
    server: GrpcServer, pki: dict[str, CommonSettings]
) -> None:
    target = f"127.0.0.1:{server.port}"
    assert await _check(target, pki["client"]) == health_pb2.HealthCheckResponse.SERVING
    assert await _check(target, pki["no_cert"]) == grpc.StatusCode.UNAVAILABLE  # no client certificate
    assert await _check(target, pki["rogue"]) == grpc.StatusCode.UNAVAILABLE  # signed by another CA
    assert await _check(target, None) == grpc.StatusCode.UNAVAILABLE  # plaintext


async def test_health_probe_speaks_mtls(server: GrpcServer, pki: dict[str, CommonSettings]) -> None:
    target = f"127.0.0.1:{server.port}"
    probe = functools.partial(healthcheck.check_grpc, target)  # blocking: in a thread, the server runs here
    assert await asyncio.to_thread(probe, settings=pki["client"]) == "SERVING"
    assert await asyncio.to_thread(probe, settings=CommonSettings()) == "UNAVAILABLE"


async def test_half_configured_tls_is_refused(pki: dict[str, CommonSettings]) -> None:
    with pytest.raises(ValueError, match="both"):
        create_grpc_server(CommonSettings(port=0, grpc_tls_cert=pki["server"].grpc_tls_cert), [])


async def test_without_settings_the_server_stays_plaintext() -> None:
    gs = create_grpc_server(CommonSettings(port=0), [])
    await gs.start()
    await gs.set_serving(True)
    try:
        assert await _check(f"127.0.0.1:{gs.port}", None) == health_pb2.HealthCheckResponse.SERVING
    finally:
        await gs.stop(0)
