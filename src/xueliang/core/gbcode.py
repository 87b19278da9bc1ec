"""GB/T 28181 20-digit identifiers (Appendix E of the 2016/2022 editions).

Layout: ``CCCCCCCC II TTT N SSSSSS``

- ``C`` 8 digits centre code: province 2, city 2, county 2, base unit 2 (administrative division)
- ``I`` 2 digits industry code
- ``T`` 3 digits type code (111 DVR, 118 NVR, 131 camera, 132 IPC, 200 SIP server, …)
- ``N`` 1 digit network identifier
- ``S`` 6 digits serial number

Devices in the field send type codes outside the table, so parsing accepts any digits and only
``describe`` tells what a known type means.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from xueliang.core.errors import InvalidInput

GB_ID_LENGTH = 20

TYPE_NAMES: dict[str, str] = {
    "111": "DVR",
    "112": "video server",
    "113": "encoder",
    "114": "decoder",
    "115": "video switch matrix",
    "116": "audio switch matrix",
    "117": "alarm controller",
    "118": "NVR",
    "130": "HVR",
    "131": "camera",
    "132": "IPC",
    "133": "display",
    "134": "alarm input",
    "135": "alarm output",
    "136": "voice input",
    "137": "voice output",
    "138": "mobile transmission device",
    "139": "other peripheral",
    "200": "SIP server",
    "201": "web application server",
    "202": "media distribution server",
    "203": "proxy server",
    "204": "security server",
    "205": "alarm server",
    "206": "database server",
    "207": "GIS server",
    "208": "management server",
    "209": "access gateway",
    "210": "media storage server",
    "211": "signalling security routing gateway",
    "215": "business group",
    "216": "virtual organisation",
}

# Type codes the registry assigns by device kind when it has to generate an ID.
DEVICE_KIND_TYPE = {
    "dvr": "111",
    "encoder": "113",
    "nvr": "118",
    "ipc": "132",
    "camera": "131",
    "platform": "200",
}
CHANNEL_TYPE = "131"


@dataclass(frozen=True, slots=True)
class GbId:
    value: str

    @property
    def centre(self) -> str:
        return self.value[0:8]

    @property
    def industry(self) -> str:
        return self.value[8:10]

    @property
    def type_code(self) -> str:
        return self.value[10:13]

    @property
    def network(self) -> str:
        return self.value[13]

    @property
    def serial(self) -> int:
        return int(self.value[14:20])

    def describe(self) -> str:
        return TYPE_NAMES.get(self.type_code, f"type {self.type_code}")

    def __str__(self) -> str:
        return self.value


def is_gb_id(value: str) -> bool:
    return len(value) == GB_ID_LENGTH and value.isascii() and value.isdigit()


def parse_gb_id(value: str) -> GbId:
    value = value.strip()
    if not is_gb_id(value):
        raise InvalidInput(f"not a 20-digit GB/T 28181 ID: {value!r}")
    return GbId(value)


def centre_code_for(civil_code: str) -> str:
    """The 8-digit centre part for an administrative code of 2–8 (or more) digits."""
    digits = civil_code[:8]
    return digits.ljust(8, "0")


def gb_prefix(*, centre: str, type_code: str, industry: str = "00", network: str = "0") -> str:
    """The 14 digits before the serial."""
    prefix = f"{centre_code_for(centre)}{industry}{type_code}{network}"
    if len(prefix) != 14 or not prefix.isdigit():
        raise InvalidInput(f"cannot build a GB ID from prefix {prefix!r}")
    return prefix


MAX_SERIAL = 999_999


def generate_gb_id(
    *,
    centre: str,
    type_code: str,
    taken: Iterable[str],
    industry: str = "00",
    network: str = "0",
) -> str:
    """Next free ID under ``centre``+``industry``+``type``+``network``.

    ``taken`` holds IDs already in use with the same 14-digit prefix (or any IDs; others are
    ignored). The serial is one past the highest in use, so IDs stay dense and predictable, as
    integrators number their sheets.
    """
    prefix = gb_prefix(centre=centre, type_code=type_code, industry=industry, network=network)
    highest = 0
    for existing in taken:
        if existing.startswith(prefix) and is_gb_id(existing):
            highest = max(highest, int(existing[14:]))
    if highest >= MAX_SERIAL:
        raise InvalidInput(f"GB ID serials under {prefix} are exhausted")
    return f"{prefix}{highest + 1:06d}"
