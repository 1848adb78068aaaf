"""Container health probe: ``python -m beatflow.common.healthcheck --port 50053``.

Asks the service's gRPC health service (the one ``create_grpc_server``
registers) and exits 0 only when it answers SERVING, so Docker's HEALTHCHECK
and compose's ``service_healthy`` need no extra binary in the image. With
``--http URL`` it checks an HTTP endpoint instead (the gateway).
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from beatflow.common import grpctls
from beatflow.common.settings import CommonSettings


def check_grpc(target: str, service: str = "", timeout_s: float = 3.0, settings: CommonSettings | None = None) -> str:
    """Return the health status name (``SERVING``, ``NOT_SERVING``, ...) or the gRPC error code.

    Speaks (m)TLS when the settings (default: ``BEATFLOW_GRPC_TLS_*`` from the environment) name certificates.
    """
    with grpctls.sync_channel(target, settings or CommonSettings()) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout_s
            )
        except grpc.RpcError as exc:
            return str(exc.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def check_http(url: str, timeout_s: float = 3.0) -> str:
    """Return ``SERVING`` for a 2xx answer, otherwise the status or error."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"HTTP_{exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"UNREACHABLE ({exc})"
    return "SERVING" if 200 <= status < 300 else f"HTTP_{status}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="gRPC port to ask")
    parser.add_argument("--service", default="", help="service name; empty = the whole server")
    parser.add_argument("--http", metavar="URL", help="check this HTTP URL instead of gRPC")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)
    if args.http:
        status = check_http(args.http, args.timeout)
    elif args.port:
        status = check_grpc(f"{args.host}:{args.port}", args.service, args.timeout)
    else:
        parser.error("give --port or --http")
    print(status)
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
