"""Where the client keeps the signed-in server and token: the user's config directory, mode 0600.

``BEATFLOW_SERVER`` and ``BEATFLOW_TOKEN`` override what is stored;
``BEATFLOW_CONFIG_DIR`` moves the directory (platformdirs' default otherwise).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

DEFAULT_SERVER = "http://localhost:8000"


def config_dir() -> Path:
    override = os.environ.get("BEATFLOW_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir("beatflow", appauthor=False))


def config_path() -> Path:
    return config_dir() / "credentials.json"


@dataclass
class Credentials:
    server: str = ""
    token: str = ""
    username: str = ""


def load() -> Credentials:
    try:
        data = json.loads(config_path().read_text())
    except (OSError, ValueError):
        return Credentials()
    if not isinstance(data, dict):
        return Credentials()
    return Credentials(str(data.get("server", "")), str(data.get("token", "")), str(data.get("username", "")))


def save(creds: Credentials) -> Path:
    """Write the credentials atomically, readable by the user alone."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"server": creds.server, "token": creds.token, "username": creds.username}, fh)
    os.chmod(tmp, 0o600)  # an existing temporary file keeps its mode through O_CREAT
    os.replace(tmp, path)
    return path


def forget() -> bool:
    with contextlib.suppress(FileNotFoundError):
        config_path().unlink()
        return True
    return False


def server(folder_server: str = "") -> str:
    """The server to talk to: the environment, else the working folder's, else the signed-in one."""
    return (os.environ.get("BEATFLOW_SERVER") or folder_server or load().server or DEFAULT_SERVER).rstrip("/")


def token() -> str:
    return os.environ.get("BEATFLOW_TOKEN") or load().token
