"""ffprobe, the reference reader: what it says about a file is what players will see."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any


def video_stream(path: Path, *, count_frames: bool = True) -> dict[str, Any]:
    """The first video stream's codec_name, width, height (and nb_read_frames, decoding all)."""
    args = ["ffprobe", "-v", "error", "-select_streams", "v:0"]
    if count_frames:
        args.append("-count_frames")
    args += ["-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json"]
    out = subprocess.run([*args, str(path)], capture_output=True, text=True, check=True)
    stream: dict[str, Any] = json.loads(out.stdout)["streams"][0]
    return stream
