"""Server behaviour events and the life of raw events: one hook, one sweep.

**Server events come from the outbox, in one place.** The relay (workers/relay.py) hands
``record_from_outbox`` every row it has just sent, inside the transaction that stamps them,
so each fact becomes one behaviour event exactly once (and the event ids below make even a
replay harmless). Most facts are read from rows the domain writes anyway:

- ``order:<id>`` events with status PAID, DELIVERED, REFUNDED → ORDER_PAID / _DELIVERED /
  _REFUNDED (buyer, product, merchant, amount);
- ``posts:live`` → POST_CREATED (author, product); ``post:<id>:comments`` → COMMENTED;
- ``loyalty_event`` jobs LIKE_RECEIVED on a post → POST_LIKED by the liker (a like of one's
  own post earns nothing and writes no row: it is not an event here either);
- rows written with ``outbox.track`` (kind TRACK) for the facts that had no row: FOLLOWED,
  CIRCLE_JOINED, CHECKED_IN.

A failure to derive events is logged and does not hold back the relay (events are analytics;
the outbox's side effects are not). Nor does an account deletion or opt-out in progress: while
one holds the profiles' lock (resolvers/accounts/profiling.py), the events go to this process's
buffer of client events instead, whose flush waits for the lock (a crash within that flush's
half second loses them, as it would client events).

**Retention.** ``sweep_retention`` folds each whole UTC day older than
``KAMENG_EVENTS_RETENTION_DAYS`` into ``behaviour_event_daily`` (events, distinct users and
devices, amount, per kind, product and post) and deletes that day's raw rows, in one
transaction per day: a day is either still raw or aggregated, never both nor lost.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from tortoise.transactions import in_transaction

from kameng.settings import get_settings
from models.commerce.orders import Order
from models.community.comments import Comment
from models.community.posts import Post
from models.discovery.events import BehaviourEvent, DailyEventAggregate, EventKind
from models.outbox import OutboxEntry, OutboxKind
from resolvers.discovery import ingest
from resolvers.discovery.tracking import TrackedEvent, as_row, record

log = logging.getLogger(__name__)

_ORDER_TOPIC = re.compile(r"^order:(\d+)$")
_COMMENTS_TOPIC = re.compile(r"^post:(\d+):comments$")
_POST_LIKE = re.compile(r"^like:post:(\d+):(\d+)$")
_ORDER_KINDS = {"PAID": EventKind.ORDER_PAID, "DELIVERED": EventKind.ORDER_DELIVERED, "REFUNDED": EventKind.ORDER_REFUNDED}
_LIVE_POSTS = "posts:live"
_TRACK_FIELDS = ("user_id", "product_id", "post_id", "topic_id", "merchant_id", "order_id")


async def record_from_outbox(rows: list[OutboxEntry]) -> None:
    """The behaviour events the just-sent outbox ``rows`` stand for (see the module doc)."""
    try:
        async with in_transaction():  # a savepoint inside the relay's transaction
            events = await _derive(rows)
            if events and not await record(events, join=True, wait=False):
                # An erasure holds the profiles' lock or waits for it: the relay's one publisher
                # does not wait with it (every later commit of this process would); the buffered
                # writer writes these under the lock in its own flush (the ids keep it idempotent).
                ingest.buffer().add([as_row(event) for event in events])
    except Exception:
        log.exception("behaviour events: could not derive server events from outbox rows")


async def _derive(rows: list[OutboxEntry]) -> list[TrackedEvent]:
    orders: dict[int, list[tuple[OutboxEntry, EventKind]]] = defaultdict(list)
    posts: dict[int, OutboxEntry] = {}
    comments: dict[int, OutboxEntry] = {}
    events: list[TrackedEvent] = []
    for row in rows:
        at = row.created_at or datetime.now(UTC)
        if row.kind == OutboxKind.TRACK:
            data = row.payload
            ids = {name: int(data[name]) for name in _TRACK_FIELDS if data.get(name) is not None}
            events.append(TrackedEvent(event_id=str(data["event_id"])[:64], kind=EventKind(row.topic), occurred_at=at, **ids))
        elif row.kind == OutboxKind.EVENT:
            order_match = _ORDER_TOPIC.match(row.topic)
            comments_match = _COMMENTS_TOPIC.match(row.topic)
            if order_match and row.payload.get("status") in _ORDER_KINDS:
                orders[int(order_match.group(1))].append((row, _ORDER_KINDS[row.payload["status"]]))
            elif row.topic == _LIVE_POSTS and row.payload.get("post"):
                posts[int(row.payload["post"])] = row
            elif comments_match and row.payload.get("comment"):
                comments[int(row.payload["comment"])] = row
        elif row.topic == "loyalty_event" and row.payload.get("kwargs", {}).get("event") == "LIKE_RECEIVED":
            like = _POST_LIKE.match(str(row.payload["kwargs"].get("reference", "")))
            if like:
                post_id, liker = int(like.group(1)), int(like.group(2))
                events.append(TrackedEvent(event_id=f"like:post:{post_id}:{liker}", kind=EventKind.POST_LIKED,
                                           user_id=liker, post_id=post_id, occurred_at=at))
    if orders:
        found = await Order.filter(id__in=list(orders)).values("id", "buyer_id", "product_id", "merchant_id", "total")
        for order in found:
            for row, kind in orders[order["id"]]:
                events.append(TrackedEvent(
                    event_id=f"order:{order['id']}:{kind.value}", kind=kind, user_id=order["buyer_id"],
                    product_id=order["product_id"], merchant_id=order["merchant_id"], order_id=order["id"],
                    amount=order["total"], occurred_at=row.created_at or datetime.now(UTC)))
    if posts:
        for post in await Post.filter(id__in=list(posts)).values("id", "author_id", "product_id"):
            events.append(TrackedEvent(
                event_id=f"post:{post['id']}:created", kind=EventKind.POST_CREATED, user_id=post["author_id"],
                post_id=post["id"], product_id=post["product_id"], occurred_at=posts[post["id"]].created_at))
    if comments:
        for comment in await Comment.filter(id__in=list(comments)).values("id", "author_id", "post_id"):
            events.append(TrackedEvent(
                event_id=f"comment:{comment['id']}", kind=EventKind.COMMENTED, user_id=comment["author_id"],
                post_id=comment["post_id"], occurred_at=comments[comment["id"]].created_at))
    return events


# -- retention ---------------------------------------------------------------------------

#: Days folded per sweep run (a long backlog is worked off over several runs).
_DAYS_PER_SWEEP = 7


async def sweep_retention(now: datetime | None = None) -> int:
    """Aggregate, then delete, every whole day of raw events older than the retention
    period; returns how many raw rows were folded."""
    now = now or datetime.now(UTC)
    cutoff = datetime.combine((now - timedelta(days=get_settings().events_retention_days)).date(), time(), UTC)
    folded = 0
    for _ in range(_DAYS_PER_SWEEP):
        oldest = await BehaviourEvent.filter(occurred_at__lt=cutoff).order_by("occurred_at").first()
        if oldest is None:
            break
        folded += await _fold_day(oldest.occurred_at.astimezone(UTC).date())
    return folded


async def _fold_day(day: date) -> int:
    start = datetime.combine(day, time(), UTC)
    end = start + timedelta(days=1)
    async with in_transaction():
        rows = await BehaviourEvent.filter(occurred_at__gte=start, occurred_at__lt=end).values(
            "kind", "product_id", "post_id", "user_id", "device_id", "amount"
        )
        groups: dict[tuple[str, int, int], dict[str, Any]] = {}
        for row in rows:
            key = (str(row["kind"]), row["product_id"] or 0, row["post_id"] or 0)
            group = groups.setdefault(key, {"events": 0, "users": set(), "devices": set(), "amount": Decimal(0)})
            group["events"] += 1
            if row["user_id"] is not None:
                group["users"].add(row["user_id"])
            if row["device_id"] is not None:
                group["devices"].add(row["device_id"])
            if row["amount"] is not None:
                group["amount"] += Decimal(row["amount"])
        for (kind, product_id, post_id), group in groups.items():
            existing = await DailyEventAggregate.filter(
                day=day, kind=kind, product_id=product_id, post_id=post_id
            ).select_for_update().first()
            if existing is None:
                await DailyEventAggregate.create(
                    day=day, kind=kind, product_id=product_id, post_id=post_id, events=group["events"],
                    users=len(group["users"]), devices=len(group["devices"]), amount=group["amount"])
            else:  # a day folded before (events that arrived late): add what is new
                existing.events += group["events"]
                existing.users = max(existing.users, len(group["users"]))
                existing.devices = max(existing.devices, len(group["devices"]))
                existing.amount = Decimal(existing.amount) + group["amount"]
                await existing.save()
        await BehaviourEvent.filter(occurred_at__gte=start, occurred_at__lt=end).delete()
    return len(rows)
