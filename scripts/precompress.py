"""Gzip the web console's built text files next to themselves (name.js.gz), once at build time,
so the platform sends them compressed without compressing on every request.

    python scripts/precompress.py src/xueliang/web/console
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

SUFFIXES = {".js", ".css", ".html", ".svg", ".json", ".txt", ".mjs"}
MIN_BYTES = 1024  # smaller files gain nothing worth a second file


def main() -> None:
    root = Path(sys.argv[1])
    before = after = 0
    for path in sorted(root.rglob("*")):
        if path.suffix not in SUFFIXES or not path.is_file() or path.stat().st_size < MIN_BYTES:
            continue
        data = path.read_bytes()
        packed = gzip.compress(data, compresslevel=9, mtime=0)  # mtime 0: reproducible builds
        if len(packed) >= len(data):
            continue
        path.with_name(path.name + ".gz").write_bytes(packed)
        before += len(data)
        after += len(packed)
    print(f"precompressed {before / 1e6:.2f} MB of console files to {after / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
