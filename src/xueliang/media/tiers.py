"""Storage tiers and the storage policy for recordings, with the filesystem helpers the
sweeper (xueliang.media.storage) and start-up repair (xueliang.media.repair) share."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from xueliang.config import MediaConfig

# Where start-up repair puts files it cannot read, under each tier's root.
DAMAGED_DIR = "damaged"
# Suffix of a file being moved into a tier (a leftover is removed by repair).
MOVING_SUFFIX = ".moving"
# Rows per query (and per IN list) when walking segments.
BATCH = 500


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tier:
    index: int
    root: Path
    max_age: timedelta | None = None
    max_bytes: int = 0  # 0: no limit


@dataclass(frozen=True, slots=True)
class StoragePolicy:
    retention_days: int = 30
    quota_bytes: int = 0  # 0: no quota
    min_free_bytes: int = 0
    sweep_seconds: float = 60.0

    @classmethod
    def from_config(cls, media: MediaConfig) -> StoragePolicy:
        return cls(
            retention_days=media.retention_days,
            quota_bytes=media.quota_bytes,
            min_free_bytes=media.min_free_bytes,
            sweep_seconds=media.storage_sweep_seconds,
        )


def storage_tiers(media: MediaConfig, data_root: Path, default_root: Path) -> list[Tier]:
    """The configured tiers (paths relative to the data directory), or ``default_root`` alone."""
    if not media.tiers:
        return [Tier(0, default_root)]
    return [
        Tier(
            index=i,
            root=(data_root / t.path).resolve(),
            max_age=timedelta(days=t.max_age_days) if t.max_age_days is not None else None,
            max_bytes=t.max_bytes,
        )
        for i, t in enumerate(media.tiers)
    ]


def disk_free(path: Path) -> int:
    return shutil.disk_usage(path).free


# --- helpers ----------------------------------------------------------------------------------


def _chunks(items: Sequence[int]) -> Iterator[Sequence[int]]:
    for i in range(0, len(items), BATCH):
        yield items[i : i + BATCH]


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
