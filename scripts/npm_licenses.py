"""Print the web console's npm packages and their licences (from console/package-lock.json) as
a Markdown table, for docs/THIRD_PARTY_LICENSES.md (`make licenses`)."""

import json
import sys
from pathlib import Path

lock = json.loads(
    (Path(__file__).resolve().parent.parent / "console/package-lock.json").read_text()
)
rows = sorted(
    (
        path.rsplit("node_modules/", 1)[-1],
        entry.get("version", ""),
        entry.get("license", "?"),
        "dev" if entry.get("dev") else "dependency",
    )
    for path, entry in lock["packages"].items()
    if path
)
out = sys.stdout
out.write("| Name | Version | License | Use |\n|---|---|---|---|\n")
for name, version, lic, use in rows:
    out.write(f"| {name} | {version} | {lic} | {use} |\n")
