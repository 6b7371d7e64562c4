"""RFM per buyer: recency (days since the last purchase), frequency (purchases), monetary
value (their total), 1-5 quintile scores among all buyers, lifecycle stage and segment.

A purchase is a COMPLETED order, timed by its payment: a refund takes the order back out.
Recomputed for one buyer by the ``refresh_rfm`` job each completed or refunded order queues
(resolvers/commerce/orders.transition), and for every buyer by the sweep and after a rule
edit. Re-running either writes the same rows. The sweep ranks buyers among the populations it
holds in memory. One buyer's refresh has the database count the stored rows below and above
its values (one statement) while they are few; a count is still a scan of every row (25-35 ms
of PostgreSQL at 100,000 buyers, per completed order), so past ``rfm_exact_below`` rows the
process ranks against the stored values it read at most ``rfm_population_seconds`` ago, or
that its last sweep ranked against: among 5,000 buyers or more, each buyer that changed
meanwhile moves a share by 1/5,000 at most. The next sweep writes every buyer's exact ranks.
"""

from __future__ import annotations

import bisect
import functools
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from tortoise import connections

from kameng.settings import get_settings
from models.commerce.orders import Order, OrderStatus
from models.lifecycle.segments import BuyerRfm, SegmentRule, SegmentSize, Stage
from models.statements import InsertNew, placeholders
from resolvers.accounts import profiling, users
from resolvers.lifecycle import segments
from subscriptions import outbox


@dataclass(frozen=True)
class Rfm:
    user_id: int
    recency_days: int
    frequency: int
    monetary: Decimal
    first_purchase_at: datetime
    last_purchase_at: datetime


def stage_of(frequency: int, recency_days: int) -> Stage:
    settings = get_settings()
    if recency_days > settings.lifecycle_lapsed_days:
        return Stage.LAPSED
    if recency_days > settings.lifecycle_silent_days:
        return Stage.SILENT
    return Stage.NEW if frequency <= 1 else Stage.ACTIVE


async def purchases(user_ids: list[int] | None = None) -> dict[int, list[tuple[datetime, Decimal]]]:
    """{buyer: [(paid at, total)]} of completed orders, for ``user_ids`` or every buyer.

    Buyers who turned personalisation off (deleted accounts have it off) are not profiled:
    they get no RFM row, segment or churn score, and do not enter the churn fit."""
    query = Order.filter(status=OrderStatus.COMPLETED, buyer_id__isnull=False, buyer__personalisation=True)
    if user_ids is not None:
        query = query.filter(buyer_id__in=user_ids)
    found: dict[int, list[tuple[datetime, Decimal]]] = {}
    for buyer_id, paid_at, created_at, total in await query.values_list("buyer_id", "paid_at", "created_at", "total"):
        found.setdefault(int(buyer_id), []).append((paid_at or created_at, Decimal(total)))
    return found


def summarise(user_id: int, rows: list[tuple[datetime, Decimal]], now: datetime) -> Rfm:
    times = sorted(when for when, _ in rows)
    return Rfm(user_id=user_id, recency_days=max(0, (now - times[-1]).days), frequency=len(rows),
               monetary=sum((total for _, total in rows), Decimal("0")), first_purchase_at=times[0],
               last_purchase_at=times[-1])


def score(value: float, population: Sequence[float], *, higher_is_better: bool = True) -> int:
    """1-5: the quintile of ``value`` in the sorted ``population`` (5 is best)."""
    below = bisect.bisect_left(population, value)
    return ranked(len(population), below, len(population) - bisect.bisect_right(population, value),
                  higher_is_better=higher_is_better)


def ranked(size: int, below: int, above: int, *, higher_is_better: bool = True) -> int:
    """``score`` of a value with ``below`` smaller and ``above`` larger values among ``size``."""
    if not size:
        return 3
    better_than = below if higher_is_better else above
    ties = size - below - above
    share = (better_than + ties / 2) / size  # mid-rank: ties share their quintile
    return min(5, 1 + int(share * 5))


@dataclass(frozen=True)
class Scores:
    r: int
    f: int
    m: int


Populations = tuple[Sequence[float], Sequence[float], Sequence[float]]  # sorted recency, frequency, money


def scored_in(rfm: Rfm, populations: Populations) -> Scores:
    """Scores among sorted populations held in memory (the sweep, which has every buyer's)."""
    recency, frequency, monetary = populations
    return Scores(score(rfm.recency_days, recency, higher_is_better=False), score(rfm.frequency, frequency),
                  score(float(rfm.monetary), monetary))


@functools.cache
def _rank_sql(dialect: str) -> str:
    marks = iter(placeholders(dialect, 6))  # each value twice (below, above): SQLite's marks are positional
    money = "CAST(monetary AS REAL)" if dialect == "sqlite" else "monetary::float8"  # compared as floats, as in memory

    def sides(column: str) -> str:
        return (f"COALESCE(SUM(CASE WHEN {column} < {next(marks)} THEN 1 ELSE 0 END), 0), "
                f"COALESCE(SUM(CASE WHEN {column} > {next(marks)} THEN 1 ELSE 0 END), 0)")

    table = BuyerRfm._meta.db_table
    return f'SELECT COUNT(*), {sides("recency_days")}, {sides("frequency")}, {sides(money)} FROM "{table}"'


async def scored_in_table(rfm: Rfm) -> Scores:
    """Scores among the stored rows, counted by the database in one statement: one buyer's
    refresh (a job per completed order) neither reads every buyer's row nor sorts them."""
    connection = connections.get("default")
    money = float(rfm.monetary)
    values = [rfm.recency_days, rfm.recency_days, rfm.frequency, rfm.frequency, money, money]
    _, rows = await connection.execute_query(_rank_sql(connection.capabilities.dialect), values)
    size, r_below, r_above, f_below, f_above, m_below, m_above = (int(v) for v in tuple(rows[0]))
    global _stored
    _stored = size
    return Scores(ranked(size, r_below, r_above, higher_is_better=False), ranked(size, f_below, f_above),
                  ranked(size, m_below, m_above))


@dataclass(frozen=True)
class _Held:
    at: float  # time.monotonic() when read
    populations: Populations


_held: _Held | None = None
_stored = 0  # buyers stored, as this process last counted or read them


def _hold(populations: Populations) -> None:
    global _held, _stored
    _held = _Held(time.monotonic(), tuple(array("d", p) for p in populations))  # type: ignore[assignment]
    _stored = len(populations[0])


async def _populations_for_one() -> Populations | None:
    """The stored buyers' sorted values to rank one buyer among, read again once older than
    ``rfm_population_seconds``; None while they are fewer than ``rfm_exact_below``: then the
    database counts them (``scored_in_table``), which also tells when they are no longer few."""
    settings = get_settings()
    if _stored < settings.rfm_exact_below:
        return None
    if _held is None or time.monotonic() - _held.at > settings.rfm_population_seconds:
        _hold(await _stored_values())
        if _stored < settings.rfm_exact_below:
            return None
    assert _held is not None
    return _held.populations


@functools.cache
def _values_sql() -> str:
    columns = ("recency_days::float8", "frequency::float8", "monetary::float8")  # floats, as compared
    return f'SELECT {", ".join(f"array_agg({c} ORDER BY {c})" for c in columns)} FROM "{BuyerRfm._meta.db_table}"'


async def _stored_values() -> Populations:
    """Every stored buyer's three values, each sorted. On PostgreSQL the database sorts them and
    the driver decodes the three arrays in C: building and sorting 300,000 Python floats held the
    worker's loop (and so its other jobs) for most of a 445 ms read at 100,000 buyers."""
    connection = connections.get("default")
    if connection.capabilities.dialect == "postgres":
        _, rows = await connection.execute_query(_values_sql())
        return tuple(array("d", values or ()) for values in tuple(rows[0]))  # type: ignore[return-value]
    rows = await BuyerRfm.all().values_list("recency_days", "frequency", "monetary")
    return tuple(sorted(float(row[i]) for row in rows) for i in range(3))  # type: ignore[return-value]


NEW_RFM = InsertNew(BuyerRfm)
_CHUNK = 500  # buyers per transaction of the sweep


async def _write(rfm: Rfm, rules: list[SegmentRule], scores: Scores, now: datetime) -> None:
    stage = stage_of(rfm.frequency, rfm.recency_days)
    rule = segments.first_match(rules, recency_days=rfm.recency_days, frequency=rfm.frequency,
                                monetary=rfm.monetary, stage=stage)
    values = dict(
        recency_days=rfm.recency_days, frequency=rfm.frequency, monetary=rfm.monetary,
        r_score=scores.r, f_score=scores.f, m_score=scores.m,
        first_purchase_at=rfm.first_purchase_at, last_purchase_at=rfm.last_purchase_at, stage=stage,
        segment_rule_id=rule.id if rule is not None else None, computed_at=now,
    )
    # Update, else insert: update_or_create would open a transaction of its own inside the job's.
    if not await BuyerRfm.filter(user_id=rfm.user_id).update(**values):
        if not await NEW_RFM.run([BuyerRfm(user_id=rfm.user_id, **values)]):
            await BuyerRfm.filter(user_id=rfm.user_id).update(**values)  # a concurrent writer inserted it first


async def recompute_user(user_id: int) -> BuyerRfm | None:
    """One buyer's row, scored against the other buyers' stored rows; None (and no row) for a
    user without a completed order."""
    now = datetime.now(UTC)
    await segments.ensure_default_rules()
    populations = await _populations_for_one()  # before the transaction: a new read takes every row
    async with outbox.atomic():
        # Held: a deletion or opt-out committed meanwhile would otherwise find a profile it erased.
        rows = (await purchases([user_id])).get(user_id) if await users.hold(user_id, profiled=True) else None
        if not rows:
            await BuyerRfm.filter(user_id=user_id).delete()
            return None
        summary = summarise(user_id, rows, now)
        scores = scored_in(summary, populations) if populations is not None else await scored_in_table(summary)
        await _write(summary, await segments.active_rules(), scores, now)
        return await BuyerRfm.get(user_id=user_id)


async def recompute_all() -> int:
    """Every buyer's row from their orders; rows of users with no purchase left are removed.
    How many buyers were scored."""
    now = datetime.now(UTC)
    await segments.ensure_default_rules()
    rules = await segments.active_rules()
    every = [summarise(user_id, rows, now) for user_id, rows in (await purchases()).items()]
    populations = (sorted(float(r.recency_days) for r in every), sorted(float(r.frequency) for r in every),
                   sorted(float(r.monetary) for r in every))
    _hold(populations)  # what this process's refreshes rank against next, once there are many
    for start in range(0, len(every), _CHUNK):
        chunk = every[start:start + _CHUNK]
        async with outbox.atomic():
            await profiling.writing()  # an account erased since purchases() read it is left out
            keep = await profiling.profiled(r.user_id for r in chunk)
            for rfm in chunk:
                if rfm.user_id in keep:
                    await _write(rfm, rules, scored_in(rfm, populations), now)
    await BuyerRfm.filter(computed_at__lt=now).delete()  # not written above: no purchase left
    return len(every)


async def backfill_sizes(days: list[date]) -> int:
    """Segment sizes as they were at the end of each of ``days`` (UTC), from the completed
    orders paid by then, under today's active rules (the demo's past, or a new installation's
    history); a day counted before is replaced. How many (day, segment) counts were written."""
    rules = await segments.active_rules()
    every = await purchases()
    written = 0
    for day in days:
        end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        sizes: dict[str, int] = {}
        for user_id, rows in every.items():
            before = [(when, total) for when, total in rows if when < end]
            if not before:
                continue
            summary = summarise(user_id, before, end)
            rule = segments.first_match(rules, recency_days=summary.recency_days, frequency=summary.frequency,
                                        monetary=summary.monetary,
                                        stage=stage_of(summary.frequency, summary.recency_days))
            key = rule.key if rule is not None else segments.NO_SEGMENT
            sizes[key] = sizes.get(key, 0) + 1
        await SegmentSize.filter(day=day).delete()
        await SegmentSize.bulk_create([SegmentSize(day=day, segment_key=k, buyers=n) for k, n in sizes.items()])
        written += len(sizes)
    return written
