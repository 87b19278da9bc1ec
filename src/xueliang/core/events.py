"""A minimal in-process signal: services announce, others react (the media plane re-syncing
when the register changes). Handlers run synchronously after the change committed; a failing
handler is logged and does not undo or block the change."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Concatenate, ParamSpec, Protocol, TypeVar

log = logging.getLogger(__name__)


class Signal:
    def __init__(self, name: str) -> None:
        self.name = name
        self._handlers: list[Callable[[], None]] = []

    def connect(self, handler: Callable[[], None]) -> None:
        self._handlers.append(handler)

    def emit(self) -> None:
        for handler in list(self._handlers):
            try:
                handler()
            except Exception:
                log.exception("handler of %s failed", self.name)


class Announcer(Protocol):
    changed: Signal | None


S = TypeVar("S", bound=Announcer)
P = ParamSpec("P")
R = TypeVar("R")


def announces(method: Callable[Concatenate[S, P], R]) -> Callable[Concatenate[S, P], R]:
    """Emit ``self.changed`` after the method returned (its transaction committed)."""

    def wrapper(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        result = method(self, *args, **kwargs)
        if self.changed is not None:
            self.changed.emit()
        return result

    functools.update_wrapper(wrapper, method)
    return wrapper
