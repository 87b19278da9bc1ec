"""The audit chain: append-only records, each HMAC-chained to the one before.

``hash = HMAC-SHA256(key, prev_hash || canonical record)``. The key lives in the data directory,
not in the database, so someone who can edit the database but not read the key cannot mend the
chain after changing or deleting a record. ``verify`` walks the chain and names the first bad
record.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from xueliang.access.principal import Principal
from xueliang.core.clock import Clock
from xueliang.store.models import AuditHead, AuditRecord

GENESIS = "0" * 64
# Lengths of the bounded columns (store.models.AuditRecord).
TARGET_MAX = 128
SOURCE_MAX = 64


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str = ""


def _canonical(
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    source: str,
    reason: str,
    detail: dict[str, Any],
) -> bytes:
    body = {
        "seq": seq,
        "at": at.isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "target": target,
        "outcome": outcome,
        "source": source,
        "reason": reason,
        "detail": detail,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class AuditLog:
    def __init__(self, key: bytes, clock: Clock) -> None:
        self._key = key
        self._clock = clock

    def _digest(self, prev_hash: str, canonical: bytes) -> str:
        return hmac.new(self._key, prev_hash.encode() + canonical, hashlib.sha256).hexdigest()

    def append(
        self,
        session: Session,
        principal: Principal | str,
        action: str,
        *,
        target: str = "",
        outcome: str = "ok",
        reason: str = "",
        detail: dict[str, Any] | None = None,
        source: str | None = None,
    ) -> AuditRecord:
        """Add a record in the caller's transaction: it commits or rolls back with the change."""
        if isinstance(principal, Principal):
            actor, src = principal.username, principal.source
        else:
            actor, src = principal, ""
        src = source if source is not None else src
        # Round-trip through JSON so the detail hashed now is the detail read back later.
        detail = json.loads(json.dumps(detail or {}, default=str))
        # A record must never fail for a long value (a device address, a proxy chain): the
        # columns are bounded, so a clipped value is kept whole in the detail.
        if len(target) > TARGET_MAX:
            detail["target"], target = target, target[: TARGET_MAX - 1] + "…"
        if len(src) > SOURCE_MAX:
            detail["source"], src = src, src[: SOURCE_MAX - 1] + "…"
        head = session.execute(
            select(AuditHead).where(AuditHead.id == 1).with_for_update()
        ).scalar_one_or_none()
        if head is None:
            head = AuditHead(id=1, seq=0, hash=GENESIS)
            session.add(head)
        seq = head.seq + 1
        at = self._clock.now()
        digest = self._digest(
            head.hash, _canonical(seq, at, actor, action, target, outcome, src, reason, detail)
        )
        record = AuditRecord(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            target=target,
            outcome=outcome,
            source=src,
            reason=reason,
            detail=detail,
            prev_hash=head.hash,
            hash=digest,
        )
        session.add(record)
        head.seq, head.hash = seq, digest
        session.flush()
        return record

    def _records(self, session: Session) -> Iterator[AuditRecord]:
        stmt = select(AuditRecord).order_by(AuditRecord.seq).execution_options(yield_per=2000)
        yield from session.scalars(stmt)

    def verify(self, session: Session) -> VerifyReport:
        expected_seq, prev = 1, GENESIS
        checked = 0
        for rec in self._records(session):
            if rec.seq != expected_seq:
                return VerifyReport(
                    False, checked, expected_seq, f"record {expected_seq} is missing"
                )
            if rec.prev_hash != prev:
                return VerifyReport(
                    False, checked, rec.seq, "link to the previous record is broken"
                )
            canonical = _canonical(
                rec.seq,
                rec.at,
                rec.actor,
                rec.action,
                rec.target,
                rec.outcome,
                rec.source,
                rec.reason,
                rec.detail,
            )
            if not hmac.compare_digest(self._digest(prev, canonical), rec.hash):
                return VerifyReport(
                    False, checked, rec.seq, "record content does not match its hash"
                )
            prev = rec.hash
            expected_seq += 1
            checked += 1
        head = session.get(AuditHead, 1)
        last = expected_seq - 1
        if head is not None and (head.seq != last or head.hash != prev):
            return VerifyReport(
                False, checked, last + 1, f"chain ends at {last} but its head says {head.seq}"
            )
        return VerifyReport(True, checked)
