"""PTZ commands as the platform understands them, whatever the device speaks.

Each command checks itself when built and raises InvalidInput with a message naming the field,
so an API body, a CLI argument or a test all meet the same rules. Speeds are normalised to
[-1, 1] (ONVIF's generic velocity space; a GB/T 28181 driver scales them to its 0..255 bytes):
pan > 0 turns right, tilt > 0 up, zoom > 0 zooms in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

from xueliang.core.errors import InvalidInput

DEFAULT_MOVE_TIMEOUT = 1.0
MAX_MOVE_TIMEOUT = 10.0  # a lost stop must not leave a camera turning for long
MAX_TOKEN = 64  # ONVIF ReferenceToken
MAX_PRESET_NAME = 64

PresetOp = Literal["goto", "set", "remove"]
PRESET_OPS: tuple[str, ...] = get_args(PresetOp)


def _speed(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{name} must be a number between -1 and 1")
    if not math.isfinite(value) or not -1.0 <= value <= 1.0:
        raise InvalidInput(f"{name} speed must be between -1 and 1, not {value!r}")
    return float(value)


def _text(name: str, value: str, limit: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text")
    if any(c < " " or c == "\x7f" for c in value):
        raise InvalidInput(f"{name} must not contain control characters")
    value = value.strip()
    if not value:
        raise InvalidInput(f"{name} must not be empty")
    if len(value) > limit:
        raise InvalidInput(f"{name} must be at most {limit} characters")
    return value


@dataclass(frozen=True, slots=True)
class Move:
    """Turn and zoom at these speeds until ``timeout`` seconds pass or a Stop comes. The
    timeout travels to the device, so a camera stops by itself if the Stop is lost."""

    pan: float = 0.0
    tilt: float = 0.0
    zoom: float = 0.0
    timeout: float = DEFAULT_MOVE_TIMEOUT

    def __post_init__(self) -> None:
        for name in ("pan", "tilt", "zoom"):
            object.__setattr__(self, name, _speed(name, getattr(self, name)))
        t = self.timeout
        if isinstance(t, bool) or not isinstance(t, int | float) or not math.isfinite(t):
            raise InvalidInput("timeout must be a number of seconds")
        if not 0 < t <= MAX_MOVE_TIMEOUT:
            raise InvalidInput(
                f"timeout must be more than 0 and at most {MAX_MOVE_TIMEOUT:g} seconds, not {t!r}"
            )
        object.__setattr__(self, "timeout", float(t))
        if self.pan == self.tilt == self.zoom == 0.0:
            raise InvalidInput("a move needs a non-zero pan, tilt or zoom speed (use stop to stop)")

    def describe(self) -> dict[str, Any]:
        return {
            "action": "move",
            "pan": self.pan,
            "tilt": self.tilt,
            "zoom": self.zoom,
            "timeout": self.timeout,
        }


@dataclass(frozen=True, slots=True)
class Stop:
    """Stop panning, tilting and zooming."""

    def describe(self) -> dict[str, Any]:
        return {"action": "stop"}


@dataclass(frozen=True, slots=True)
class Preset:
    """Go to, save or remove a preset position.

    ``preset`` is the device's token for it (an ONVIF PresetToken, a GB/T 28181 preset number as
    text). ``set`` without a token asks the device for a new preset; with one it overwrites that
    preset. ``name`` is only for ``set``.
    """

    op: PresetOp
    preset: str | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.op not in PRESET_OPS:
            raise InvalidInput(f"preset op must be one of {', '.join(PRESET_OPS)}, not {self.op!r}")
        if self.preset is not None:
            object.__setattr__(self, "preset", _text("preset", self.preset, MAX_TOKEN))
        elif self.op != "set":
            raise InvalidInput(f"preset op {self.op} needs the preset to {self.op}")
        if isinstance(self.name, str) and not self.name.strip():
            object.__setattr__(self, "name", None)  # a blank name is no name
        if self.name is not None:
            if self.op != "set":
                raise InvalidInput("a preset name can only be given with op set")
            object.__setattr__(self, "name", _text("name", self.name, MAX_PRESET_NAME))

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": "preset", "op": self.op, "preset": self.preset}
        if self.name is not None:
            out["name"] = self.name
        return out


Command = Move | Stop | Preset
