"""Every installed dependency's licence must be compatible with shipping under Apache-2.0."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

# Permissive licences, plus weak copyleft used as unmodified libraries (MPL-2.0 files;
# LGPL psycopg loaded dynamically), which Apache-2.0 distribution allows.
ALLOWED = re.compile(
    r"MIT|BSD|Apache|ISC|PSF|Python Software Foundation|MPL[- ]2\.0|Mozilla Public License 2\.0"
    r"|LGPL|GNU Lesser|Unlicense|CC0|0BSD|HPND|Zlib",
    re.IGNORECASE,
)
# Strong copyleft anywhere in the expression is refused, even beside a permissive option
# only when no permissive alternative is offered ("GPL OR MIT" is fine).
COPYLEFT_ONLY = re.compile(r"^(?!.*\bOR\b).*\b(A?GPL|SSPL|EUPL)\b(?!.*Lesser)", re.IGNORECASE)


def _licences() -> dict[str, str]:
    exe = Path(sys.executable).with_name("pip-licenses")
    out = subprocess.run(
        [str(exe), "--from=mixed", "--format=json"], capture_output=True, text=True, check=True
    ).stdout
    return {p["Name"]: p["License"] for p in json.loads(out) if p["Name"] != "xueliang"}


def test_all_dependency_licences_are_compatible() -> None:
    licences = _licences()
    assert len(licences) > 20
    bad = {
        name: lic
        for name, lic in licences.items()
        if not ALLOWED.search(lic) or ("LGPL" not in lic and COPYLEFT_ONLY.search(lic))
    }
    assert bad == {}, f"licences to review: {bad}"


def test_third_party_list_names_every_runtime_dependency() -> None:
    listed = Path(__file__).parent.parent.joinpath("docs", "THIRD_PARTY_LICENSES.md").read_text()
    for name in ("fastapi", "SQLAlchemy", "alembic", "argon2-cffi", "psycopg", "openpyxl"):
        assert name in listed, name


def test_console_dependency_licences_are_compatible() -> None:
    """The web console's npm packages (the lock file records each one's licence); the built
    console ships parts of them."""
    lock = json.loads((Path(__file__).parent.parent / "console/package-lock.json").read_text())
    licences = {
        path.removeprefix("node_modules/"): str(entry.get("license", ""))
        for path, entry in lock["packages"].items()
        if path
    }
    assert len(licences) > 20
    bad = {
        name: lic
        for name, lic in licences.items()
        if not ALLOWED.search(lic) or COPYLEFT_ONLY.search(lic)
    }
    assert bad == {}, f"licences to review: {bad}"
