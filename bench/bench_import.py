"""Benchmark: importing a 10,000-row camera register (点位表) as CSV and as XLSX.

Not a test. Run from the repository root:

    .venv/bin/python bench/bench_import.py                 # SQLite, 10,000 rows
    .venv/bin/python bench/bench_import.py --rows 50000
    .venv/bin/python bench/bench_import.py --postgres      # a throw-away PostgreSQL cluster
    .venv/bin/python bench/bench_import.py --postgres postgresql+psycopg://u@host/postgres
    .venv/bin/python bench/bench_import.py --profile       # cProfile of one CSV import

Every import goes into a fresh platform (its own data directory and database) holding only the
organisation tree; building it is not timed. The sheet looks like an integrator's: Chinese
headings, half the rows NVR channels (16 per recorder, GB/T 28181), half single RTSP cameras
with credentials in the URL, some without a channel ID so that the platform assigns one.
"""

from __future__ import annotations

import argparse
import cProfile
import csv
import io
import pstats
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from sqlalchemy import create_engine, text

from xueliang.access.principal import SYSTEM
from xueliang.app import Platform, build_platform
from xueliang.config import Settings
from xueliang.core.errors import InvalidInput
from xueliang.datadir import DataDir
from xueliang.registry.schemas import OrgCreate

TARGET_SECONDS_PER_10K = 10.0
CHANNELS_PER_NVR = 16
HEADER = [
    "通道编码", "点位名称", "设备编码", "设备名称", "设备类型", "接入协议", "取流地址", "用户名",
    "密码", "组织编码", "网格编码", "经度", "纬度", "方向", "安装地址", "点位类别", "云台类型",
]  # fmt: skip
COUNTY = "340202"
TOWNS = ["城关镇", "东河镇", "西山镇", "南湖镇", "北岗镇", "青石镇"]
VILLAGES = ["一村", "二村", "三村", "四村", "五村", "六村", "七村", "八村"]
ROADS = ["人民路", "解放路", "建设路", "中山路", "长江路", "黄山路", "文化路", "学府路"]
SPOTS = ["路口", "东门", "西门", "广场", "菜市场", "学校门口", "卫生院", "桥头"]
PTZ = ["球机", "枪机", "半球", "遥控枪机"]
CLASSES = ["一类", "二类", "三类"]


# --- the platform --------------------------------------------------------------------------


class Databases:
    """Hands out an empty database per run: a SQLite file, or a database on a server."""

    def __init__(self, root: Path, server: str | None) -> None:
        self._root = root
        self._server = server
        self._made: list[str] = []
        self._n = 0

    def new(self) -> str:
        self._n += 1
        if self._server is None:
            return f"sqlite:///{self._root / f'run{self._n}.db'}"
        name = f"xl_bench_{self._n}"
        engine = create_engine(self._server, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        self._made.append(name)
        return self._server.rsplit("/", 1)[0] + "/" + name

    def drop_all(self) -> None:
        if self._server is None or not self._made:
            return
        engine = create_engine(self._server, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            for name in self._made:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def org_tree() -> list[tuple[str, str, str, str | None]]:
    """County → 6 towns → 8 villages each → 2 grids per village: 151 organisations."""
    orgs: list[tuple[str, str, str, str | None]] = [(COUNTY, "示范县", "county", None)]
    for t, town in enumerate(TOWNS, start=1):
        town_code = f"{COUNTY}{t:03d}"
        orgs.append((town_code, town, "town", COUNTY))
        for v, village in enumerate(VILLAGES, start=1):
            village_code = f"{town_code}{v:03d}"
            orgs.append((village_code, town + village, "village", town_code))
            for g in (1, 2):
                orgs.append((f"{village_code}{g:03d}", f"{town}{village}{g}号网格", "grid",
                             village_code))  # fmt: skip
    return orgs


def fresh_platform(
    root: Path, dbs: Databases, orgs: list[tuple[str, str, str, str | None]]
) -> Platform:
    settings = Settings()
    settings.database.url = dbs.new()
    d = DataDir(root / f"data-{time.monotonic_ns()}")
    d.create(settings)
    p = build_platform(d.root, settings=settings)
    for code, name, level, parent in orgs:
        p.orgs.create(SYSTEM, OrgCreate(code=code, name=name, level=level, parent=parent))  # type: ignore[arg-type]
    return p


# --- the register --------------------------------------------------------------------------


def register_rows(n: int, seed: int = 20240601) -> list[list[Any]]:
    """``n`` rows: the first half NVR channels, the rest single IPCs."""
    rng = random.Random(seed)
    villages = [(code, name) for code, name, level, _ in org_tree() if level == "village"]
    rows: list[list[Any]] = []
    nvr_rows = n // 2
    for i in range(n):
        village, village_name = villages[(i // CHANNELS_PER_NVR) % len(villages)]
        grid = f"{village}{rng.choice((1, 2)):03d}"
        road, spot = rng.choice(ROADS), rng.choice(SPOTS)
        name = f"{village_name}{road}{spot}{i % 97 + 1}号"
        lon = round(117.0 + rng.random() * 0.8, 6)
        lat = round(30.3 + rng.random() * 0.6, 6)
        direction = rng.randrange(360)
        address = f"{village_name}{road}{rng.randrange(1, 300)}号"
        point_class = rng.choice(CLASSES)
        ptz = rng.choice(PTZ)
        channel_id = f"34020200001310{i + 1:06d}"
        if i < nvr_rows:
            nvr = i // CHANNELS_PER_NVR + 1
            device_id = f"34020200001180{nvr:06d}"
            rows.append([
                channel_id, name, device_id, f"{village_name}{nvr}号NVR", "nvr", "国标", "",
                "admin", f"Nvr-{nvr:04d}-pw", village, grid, lon, lat, direction, address,
                point_class, ptz,
            ])  # fmt: skip
        else:
            host = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
            url = f"rtsp://admin:Cam-{i:05d}@{host}:554/Streaming/Channels/101"
            rows.append([
                # One camera in three has no channel ID yet: the platform assigns it.
                "" if i % 3 == 0 else channel_id, name, "", "", "", "", url, "", "", village,
                grid, lon, lat, direction, address, point_class, ptz,
            ])  # fmt: skip
    return rows


def to_csv(rows: list[list[Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8-sig")


def to_xlsx(rows: list[list[Any]]) -> bytes:
    book = Workbook(write_only=True)
    ws = book.create_sheet("点位表")
    ws.append(HEADER)
    for row in rows:
        ws.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- running -------------------------------------------------------------------------------


@contextmanager
def postgres(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support.postgres import throwaway_cluster

    with throwaway_cluster() as server:
        yield server


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument(
        "--postgres",
        nargs="?",
        const="",
        default=None,
        metavar="URL",
        help="run on PostgreSQL: this server (superuser URL), or a throw-away cluster",
    )
    ap.add_argument("--profile", action="store_true", help="cProfile one CSV import")
    args = ap.parse_args()

    n = args.rows
    t_gen, rows = timed(lambda: register_rows(n))
    csv_data = to_csv(rows)
    t_xlsx, xlsx_data = timed(lambda: to_xlsx(rows))
    bad = [list(r) for r in rows]
    bad_line = n // 2 + 2  # the line in the file: header is line 1
    bad[bad_line - 2][HEADER.index("纬度")] = 95
    bad_csv = to_csv(bad)
    orgs = org_tree()
    print(
        f"register: {n} rows ({n // 2} NVR channels on {-(-(n // 2) // CHANNELS_PER_NVR)} NVRs, "
        f"{n - n // 2} IPCs), {len(orgs)} organisations; generated in {t_gen:.1f} s, "
        f"CSV {len(csv_data) / 1e6:.1f} MB, XLSX {len(xlsx_data) / 1e6:.1f} MB "
        f"(written in {t_xlsx:.1f} s)"
    )

    results: list[tuple[str, int, float, str]] = []
    server_cm = postgres(args.postgres or None) if args.postgres is not None else nullcontext(None)
    with tempfile.TemporaryDirectory(prefix="xl-bench-") as tmp, server_cm as server:
        root = Path(tmp)
        dbs = Databases(root, server)
        print(f"database: {'PostgreSQL' if server else 'SQLite'}")
        try:
            for label, data, filename in (
                ("csv", csv_data, "点位表.csv"),
                ("xlsx", xlsx_data, "点位表.xlsx"),
            ):
                p = fresh_platform(root, dbs, orgs)
                try:
                    seconds, result = timed(
                        lambda p=p, data=data, filename=filename: p.register.import_sheet(
                            SYSTEM, data, filename=filename
                        )
                    )
                    assert result.channels_created == n, result
                    _, total = p.channels.list(SYSTEM, limit=1)
                    assert total == n, total
                    results.append((f"{label} (new)", n, seconds, "imported"))
                    if label == "csv":
                        # The same sheet again: every row is an update.
                        seconds, result = timed(
                            lambda p=p: p.register.import_sheet(SYSTEM, csv_data, filename="a.csv")
                        )
                        # Generated IDs are not in the sheet: those rows make new cameras again.
                        assert result.channels_updated + result.channels_created == n, result
                        results.append((
                            "csv (re-import)", n, seconds,
                            f"{result.channels_updated} updated, {result.channels_created} new",
                        ))  # fmt: skip
                        seconds, body = timed(
                            lambda p=p: p.register.export_sheet(SYSTEM, fmt="csv")
                        )
                        results.append(("csv (export)", n, seconds, f"{len(body) / 1e6:.1f} MB"))
                        seconds, body = timed(
                            lambda p=p: p.register.export_sheet(SYSTEM, fmt="xlsx")
                        )
                        results.append(("xlsx (export)", n, seconds, f"{len(body) / 1e6:.1f} MB"))
                finally:
                    p.close()

            p = fresh_platform(root, dbs, orgs)
            try:
                start = time.perf_counter()
                try:
                    p.register.import_sheet(SYSTEM, bad_csv, filename="bad.csv")
                    raise AssertionError("the sheet with a bad row was accepted")
                except InvalidInput as exc:
                    seconds = time.perf_counter() - start
                    assert [(d["row"], d["column"]) for d in exc.details] == [(bad_line, "纬度")]
                _, total = p.channels.list(SYSTEM, limit=1)
                assert total == 0
                results.append(("csv, 1 bad row", n, seconds, f"rejected (line {bad_line})"))
            finally:
                p.close()

            if args.profile:
                p = fresh_platform(root, dbs, orgs)
                try:
                    prof = cProfile.Profile()
                    prof.enable()
                    p.register.import_sheet(SYSTEM, csv_data, filename="p.csv")
                    prof.disable()
                finally:
                    p.close()
        finally:
            dbs.drop_all()

    print()
    print(f"{'format':<18} {'rows':>7} {'seconds':>8} {'rows/s':>8}  outcome")
    print(f"{'-' * 18} {'-' * 7} {'-' * 8} {'-' * 8}  {'-' * 24}")
    order = ["csv (new)", "xlsx (new)", "csv (re-import)", "csv, 1 bad row"]
    results.sort(key=lambda r: order.index(r[0]) if r[0] in order else len(order))
    for label, count, seconds, outcome in results:
        print(f"{label:<18} {count:>7} {seconds:>8.2f} {count / seconds:>8.0f}  {outcome}")
    budget = TARGET_SECONDS_PER_10K * n / 10_000
    slow = [r for r in results if "export" not in r[0] and r[2] > budget]
    print()
    print(f"target: under {budget:.0f} s per import of {n} rows: " + ("MISSED" if slow else "met"))
    if args.profile:
        print()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    return 1 if slow else 0


if __name__ == "__main__":
    sys.exit(main())
