"""The platform's events: what happened at a camera or device, from whatever noticed it.

GB/T 28181 alarms arrive here today (``kind`` "gb.alarm"); analytics and IoT linkage write to
the same store later under kinds of their own. Tracks of moving sources (GB/T 28181
MobilePosition: body cameras, vehicles, drones) are kept beside them.
"""

from xueliang.events.service import EventService, NewEvent, NewPosition

__all__ = ["EventService", "NewEvent", "NewPosition"]
