"""The gateway's HTTP API, with every failure turned into a one-line CliError."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from beatflow.cli import errors
from beatflow.cli.errors import CliError

if TYPE_CHECKING:
    import httpx

# httpx is imported by the first client made, not at start-up: `status` and friends stay quick.


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip().splitlines()
        return text[0][:200] if text else response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):  # validation errors: field and message of the first
        first = detail[0] if detail else {}
        where = ".".join(str(p) for p in first.get("loc", [])[1:])
        return f"{where}: {first.get('msg', 'invalid')}" if where else str(first.get("msg", "invalid request"))
    return str(detail) if detail else response.reason_phrase


class ApiError(CliError):
    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.detail = _detail(response)
        try:
            self.body: Any = response.json()
        except ValueError:
            self.body = None
        message = self.detail
        if self.status == 401:
            message = f"not signed in or the token was refused ({self.detail}); run `beatflow login`"
        super().__init__(message, errors.for_status(self.status))


class Client:
    """Calls to one server, with the bearer token when there is one."""

    def __init__(self, server: str, token: str = "") -> None:
        self.server = server.rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers["User-Agent"] = "beatflow-cli/0.1"
        import httpx

        self._httpx = httpx
        self.http = httpx.Client(base_url=self.server, headers=headers, timeout=httpx.Timeout(60.0, connect=10.0))

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unreachable(self, exc: Exception) -> CliError:
        return CliError(f"cannot reach the BeatFlow server at {self.server}: {exc}", errors.UNREACHABLE)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except self._httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
        if response.status_code >= 400:
            raise ApiError(response)
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self._json(self.request("GET", path, **kwargs))

    def post(self, path: str, body: Any = None, **kwargs: Any) -> Any:
        return self._json(self.request("POST", path, json=body, **kwargs))

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise CliError(
                f"{self.server} answered {response.request.url.path} with something other than JSON: "
                "is it a BeatFlow server?",
                errors.UNREACHABLE,
            ) from None

    @contextlib.contextmanager
    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """A streamed response (checked for errors before the body is read)."""
        try:
            with self.http.stream(method, path, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    raise ApiError(response)
                yield response
        except self._httpx.HTTPError as exc:
            raise self._unreachable(exc) from None
