"""The task center in the graph: each task and the user's progress in its current period."""

from __future__ import annotations

import strawberry

from models.loyalty.tasks import TaskPeriod as TaskPeriodValue
from resolvers.accounts.auth import allowed
from resolvers.loyalty import tasks
from schema.context import Info

TaskPeriod = strawberry.enum(TaskPeriodValue, name="TaskPeriod")


@strawberry.type(description="A task of the task center and the viewer's progress in its current period.")
class Task:
    code: str
    title: str
    period: TaskPeriod
    event: str
    target: int
    reward_points: int
    progress: int
    completed: bool
    period_key: str

    @classmethod
    def of(cls, s: tasks.TaskState) -> Task:
        return cls(code=s.task.code, title=s.task.title, period=s.task.period, event=s.task.event,
                   target=s.task.target, reward_points=s.task.reward_points, progress=s.progress,
                   completed=s.completed, period_key=s.period_key)


async def tasks_of(info: Info, user_id: int) -> list[Task] | None:
    """`User.tasks`: to the user themself and to staff."""
    if not allowed(info.context.actor, owner_id=user_id):
        return None
    return [Task.of(s) for s in await tasks.list_for(info.context.actor, user_id)]
