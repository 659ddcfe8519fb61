"""The docker's remembered choices, stored in kritarc through ``Krita.readSetting/writeSetting``.

Krita stores settings as strings under a group; ``load``/``save`` take the two functions so the
same code is tested against a dict. The server token is deliberately not stored here: kritarc
is readable by other local users, and the local server's token file (0600) is found by the core.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace

from latentbrush.protocol import REFINER_AT
from latentbrush.protocol.transport import DEFAULT_URL

SETTINGS_GROUP = "latentbrush"
LOCAL, REMOTE = "local", "remote"

Reader = Callable[[str, str, str], str]  # (group, key, default) -> value, like Krita.readSetting
Writer = Callable[[str, str, str], None]  # (group, key, value), like Krita.writeSetting


@dataclass(frozen=True)
class DockerSettings:
    server_mode: str = LOCAL  # LOCAL: the docker starts the backend; REMOTE: connect to url
    server_command: str = ""  # "" = latentbrush-server on PATH, else a command line (python -m ...)
    url: str = DEFAULT_URL
    model: str = ""
    prompt: str = ""
    negative_prompt: str = ""
    sampler: str = "Euler a"
    steps: int = 20
    cfg: float = 7.0
    seed: int = 0
    random_seed: bool = True
    batch: int = 1
    strength: float = 0.5  # refine
    blend_outward: int = 0  # px past the selection the result may blend; 0 = the selection is the limit
    upscale_factor: float = 2.0
    upscaler: str = ""
    upscale_refine: bool = False  # a tiled img2img pass after the upscale
    upscale_refine_strength: float = 0.3
    upscale_unblur: float = 0.0  # tile ControlNet weight in that pass; 0 = off
    refiner: str = ""  # the Generate tab's SDXL refiner; "" = none
    refiner_at: float = REFINER_AT  # where it takes over
    style: str = "Default"  # the Generate tab's style (core/styles.py), by name
    history_budget_mb: float = 50.0  # room for the job history saved in each document (history_store.py)


def _parse(kind: type, text: str, default: object) -> object:
    try:
        if kind is bool:
            return text.strip().lower() in ("1", "true", "yes")
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        return default
    return text


def load(read: Reader) -> DockerSettings:
    """Settings from storage; a missing or unreadable value keeps its default."""
    defaults = DockerSettings()
    values: dict[str, object] = {}
    for f in fields(DockerSettings):
        default = getattr(defaults, f.name)
        text = read(SETTINGS_GROUP, f.name, "")
        if text != "":
            values[f.name] = _parse(type(default), text, default)
    return replace(defaults, **values)


def save(settings: DockerSettings, write: Writer) -> None:
    for name, value in asdict(settings).items():
        write(SETTINGS_GROUP, name, str(value).lower() if isinstance(value, bool) else str(value))
