"""Find the per-install token the local server wrote, without platformdirs (the plugin may not depend on it).

The server stores it at ``platformdirs.user_config_dir("latentbrush", appauthor=False) / "token"``;
``config_dir`` reproduces that path with the standard library on Linux, macOS and Windows.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from latentbrush.protocol.transport import APP_NAME, TOKEN_FILE_NAME

TOKEN_ENV = "LATENTBRUSH_TOKEN"  # explicit token, e.g. for a remote server
TOKEN_FILE_ENV = "LATENTBRUSH_TOKEN_FILE"


class TokenError(RuntimeError):
    """No token could be found or read; the message says where it looked."""


def _xdg_config_home(env: dict[str, str]) -> str | None:
    value = env.get("XDG_CONFIG_HOME", "")
    return value if value.startswith("/") else None  # platformdirs ignores relative values


def config_dir(platform: str = sys.platform, env: dict[str, str] | None = None, home: str | None = None) -> Path:
    """The user config folder of latentbrush, the same as the server's platformdirs call."""
    env = dict(os.environ) if env is None else env
    home = home if home is not None else os.path.expanduser("~")
    if platform == "win32":
        base = env.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
        return Path(base) / APP_NAME
    xdg = _xdg_config_home(env)
    if xdg:
        return Path(xdg) / APP_NAME
    if platform == "darwin":
        return Path(home) / "Library" / "Application Support" / APP_NAME
    return Path(home) / ".config" / APP_NAME


def default_token_path() -> Path:
    return config_dir() / TOKEN_FILE_NAME


def read_token_file(path: str | os.PathLike[str]) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise TokenError(f"no token file at {path}: start latentbrush-server once on this machine, or pass the token")
    except OSError as exc:
        raise TokenError(f"cannot read the token file {path}: {exc}")
    if not token:
        raise TokenError(f"the token file {path} is empty")
    return token


def find_token(token: str | None = None, token_file: str | os.PathLike[str] | None = None) -> str:
    """Explicit token > explicit file > $LATENTBRUSH_TOKEN > $LATENTBRUSH_TOKEN_FILE > the server's default file."""
    if token:
        return token
    if token_file:
        return read_token_file(token_file)
    if os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip()
    if os.environ.get(TOKEN_FILE_ENV):
        return read_token_file(os.environ[TOKEN_FILE_ENV])
    return read_token_file(default_token_path())
