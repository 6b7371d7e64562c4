"""The task center: daily and one-off tasks whose progress is driven by loyalty events
(ORDER_COMPLETED, POST_CREATED, CHECK_IN, and any other event name a task names).
Whoever causes an event counts it here (resolvers/loyalty/events.py, checkins.py): the task
center rewards through the points ledger and coupons, and neither of those knows about it.

Each event counts once per (user, event, reference): it is marked by a zero-amount points
entry (rule ``event``), unique like every entry, in the same transaction as the progress it
makes. Progress rows are unique per (task, user, period) (the calendar day in
``KAMENG_LOYALTY_TIMEZONE`` for DAILY tasks, ``once`` for ONCE ones), and a task is completed
by a conditional update (``completed_at IS NULL AND progress >= target``), so its reward
(points, a coupon, or both) is given once per period, whatever the concurrency.

``DEFAULT_TASKS`` are created on first use; staff can add rows to ``task`` for more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise.expressions import F

from kameng import clock
from models.loyalty.tasks import Task, TaskPeriod, TaskProgress
from models.statements import InsertNew
from resolvers.loyalty import coupons, points
from resolvers.accounts.auth import Actor, require
from subscriptions import outbox


@dataclass(frozen=True)
class DefaultTask:
    code: str
    title: str
    period: TaskPeriod
    event: str
    target: int
    reward_points: int


NEW_TASKS, NEW_PROGRESS = InsertNew(Task), InsertNew(TaskProgress)
DEFAULT_TASKS = [
    DefaultTask("DAILY_CHECK_IN", "Check in today", TaskPeriod.DAILY, "CHECK_IN", 1, 2),
    DefaultTask("DAILY_POST", "Share a post today", TaskPeriod.DAILY, "POST_CREATED", 1, 5),
    DefaultTask("FIRST_ORDER", "Complete your first order", TaskPeriod.ONCE, "ORDER_COMPLETED", 1, 50),
    DefaultTask("FIVE_ORDERS", "Complete five orders", TaskPeriod.ONCE, "ORDER_COMPLETED", 5, 100),
]

_seeded = False


async def ensure_defaults() -> None:
    global _seeded
    if _seeded:
        return
    existing = set(await Task.all().values_list("code", flat=True))
    # One statement for the missing ones; a task created concurrently is simply not new.
    await NEW_TASKS.run([
        Task(code=spec.code, title=spec.title, period=spec.period, event=spec.event, target=spec.target,
             reward_points=spec.reward_points)
        for spec in DEFAULT_TASKS if spec.code not in existing
    ])
    _seeded = True


def period_key(task: Task, at: datetime | None = None) -> str:
    if task.period == TaskPeriod.DAILY:
        return points.today().isoformat() if at is None else at.date().isoformat()
    return "once"


async def _progress_row(task: Task, user_id: int, key: str) -> TaskProgress:
    row = await TaskProgress.filter(task_id=task.id, user_id=user_id, period_key=key).first()
    if row is not None:
        return row
    made = await NEW_PROGRESS.run([TaskProgress(task_id=task.id, user_id=user_id, period_key=key)])
    return made[0] if made else await TaskProgress.get(task_id=task.id, user_id=user_id, period_key=key)


async def record_event(user_id: int, event: str, reference: str) -> list[Task]:
    """Count ``event`` towards the user's tasks, once per reference; returns the tasks it
    completed (and rewarded). Runs in the caller's transaction."""
    await ensure_defaults()
    tasks = await Task.filter(event=event, active=True)
    if not tasks:
        return []
    completed: list[Task] = []
    async with outbox.atomic(join=True):  # no savepoint: nothing below is recovered from
        if await points.post(user_id, "event", f"{event}:{reference}"[:120], 0, event) is None:
            return []  # counted already
        for task in tasks:
            key = period_key(task)
            row = await _progress_row(task, user_id, key)
            await TaskProgress.filter(id=row.id, completed_at=None).update(progress=F("progress") + 1)
            done = await TaskProgress.filter(id=row.id, completed_at=None, progress__gte=task.target).update(
                completed_at=clock.now()
            )
            if done == 1:
                await _reward(task, user_id, key)
                completed.append(task)
    return completed


async def _reward(task: Task, user_id: int, key: str) -> None:
    if task.reward_points:
        await points.post(user_id, "task", f"{task.code}:{key}", task.reward_points, task.title)
    if task.reward_coupon_id is not None:
        await coupons.issue_one(task.reward_coupon_id, user_id, "task")


@dataclass(frozen=True)
class TaskState:
    task: Task
    period_key: str
    progress: int
    completed: bool


async def list_for(actor: Actor, user_id: int) -> list[TaskState]:
    require(actor, owner_id=user_id)
    await ensure_defaults()
    tasks = await Task.filter(active=True).order_by("id")
    keys = {task.id: period_key(task) for task in tasks}
    rows = {
        (row.task_id, row.period_key): row
        for row in await TaskProgress.filter(user_id=user_id, task_id__in=list(keys), period_key__in=list(set(keys.values())))
    }
    states = []
    for task in tasks:
        row = rows.get((task.id, keys[task.id]))
        progress = min(row.progress, task.target) if row else 0
        states.append(TaskState(task, keys[task.id], progress, bool(row and row.completed_at)))
    return states
