"""The demonstration area that ``init --demo`` puts into the register.

A county with three towns, their villages and grids, and sixteen camera points around them,
enough to show the tree, scoping and the map. The built-in camera simulator feeds them (every
eighth in H.265), so live view and recording work with no camera attached.
"""

from __future__ import annotations

from xueliang.access.principal import SYSTEM
from xueliang.app import Platform
from xueliang.core.errors import Conflict
from xueliang.registry.schemas import ChannelUpdate, DeviceCreate, OrgCreate

DEMO_COUNTY = "340202"

ORGS: list[tuple[str, str, str, str | None]] = [
    ("34", "示范省", "province", None),
    ("3402", "示范市", "city", "34"),
    (DEMO_COUNTY, "雪亮县", "county", "3402"),
    ("340202001", "城关镇", "town", DEMO_COUNTY),
    ("340202002", "河西镇", "town", DEMO_COUNTY),
    ("340202003", "青山乡", "town", DEMO_COUNTY),
    ("340202001001", "东街社区", "village", "340202001"),
    ("340202001002", "西街社区", "village", "340202001"),
    ("340202002001", "河西村", "village", "340202002"),
    ("340202003001", "青山村", "village", "340202003"),
    ("340202001001001", "东街第一网格", "grid", "340202001001"),
    ("340202001001002", "东街第二网格", "grid", "340202001001"),
    ("340202002001001", "河西村网格", "grid", "340202002001"),
]

# (name, village, grid, longitude, latitude, point class, ptz type)
POINTS: list[tuple[str, str, str | None, float, float, int, str]] = [
    ("东街与人民路交叉口", "340202001001", "340202001001001", 117.2801, 31.8612, 1, "dome"),
    ("东街农贸市场入口", "340202001001", "340202001001001", 117.2816, 31.8620, 3, "fixed"),
    ("东街小学校门", "340202001001", "340202001001002", 117.2830, 31.8605, 2, "fixed"),
    ("东街派出所门口", "340202001001", "340202001001002", 117.2842, 31.8598, 1, "half_dome"),
    ("西街公交站", "340202001002", None, 117.2755, 31.8610, 3, "fixed"),
    ("西街广场", "340202001002", None, 117.2741, 31.8622, 1, "dome"),
    ("城关镇卫生院", "340202001002", None, 117.2768, 31.8634, 2, "fixed"),
    ("城关镇汽车站", "340202001002", None, 117.2779, 31.8648, 1, "remote_fixed"),
    ("河西大桥东", "340202002001", "340202002001001", 117.2602, 31.8555, 1, "dome"),
    ("河西村村委会", "340202002001", "340202002001001", 117.2588, 31.8540, 3, "fixed"),
    ("河西村河堤", "340202002001", None, 117.2570, 31.8531, 3, "fixed"),
    ("河西镇中学", "340202002001", None, 117.2620, 31.8570, 2, "half_dome"),
    ("青山村路口", "340202003001", None, 117.3011, 31.8802, 3, "fixed"),
    ("青山水库大坝", "340202003001", None, 117.3050, 31.8831, 2, "dome"),
    ("青山村卫生室", "340202003001", None, 117.3002, 31.8790, 3, "fixed"),
    ("青山乡政府", "340202003001", None, 117.2990, 31.8780, 1, "remote_fixed"),
]


def seed_demo(platform: Platform) -> int:
    """Add the demo area; returns the number of channels added (0 when it is already there)."""
    for code, name, level, parent in ORGS:
        try:
            platform.orgs.create(
                SYSTEM, OrgCreate(code=code, name=name, level=level, parent=parent)
            )
        except Conflict:
            if code == DEMO_COUNTY:
                return 0
    added = 0
    for n, (name, village, grid, lon, lat, point_class, ptz) in enumerate(POINTS, start=1):
        device = platform.devices.create(
            SYSTEM,
            DeviceCreate(
                name=name,
                protocol="sim",
                url=f"sim://{'h265' if n % 8 == 0 else 'h264'}/640x360@25?seed={n}",
                org=village,
                manufacturer="Xueliang",
                model="simulator",
            ),
        )
        channels, _ = platform.channels.list(SYSTEM, device=device.id)
        platform.channels.update(
            SYSTEM,
            channels[0].id,
            ChannelUpdate(
                longitude=lon,
                latitude=lat,
                grid=grid,
                point_class=point_class,
                ptz_type=ptz,
                address=f"雪亮县{name}",
                direction=(n * 45) % 360,
            ),
        )
        added += 1
    return added
