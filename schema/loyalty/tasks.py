"""The task center in the graph: each task and the user's progress in its current period."""

from __future__ import annotations

import strawberry

from models.loyalty.tasks import TaskPeriod as TaskPeriodValue
from resolvers.accounts.auth import allowed
from resolvers.loyalty import tasks
from schema.base import describe_values
from schema.context import Info

TaskPeriod = describe_values(
    strawberry.enum(TaskPeriodValue, name="TaskPeriod", description="How often a task can be done."),
    DAILY="Every day (in the loyalty programme's time zone); progress starts over at midnight.",
    ONCE="Once per account.",
)


@strawberry.type(description="A task of the task center and the viewer's progress in its current period.")
class Task:
    code: str = strawberry.field(description="Stable code of the task.")
    title: str = strawberry.field(description="What to do, in English.")
    period: TaskPeriod = strawberry.field(description="How often it can be done.")
    event: str = strawberry.field(description="The event that counts toward it, e.g. CHECK_IN, POST_CREATED.")
    target: int = strawberry.field(description="How many such events complete it.")
    reward_points: int = strawberry.field(description="Points awarded on completion.")
    progress: int = strawberry.field(description="Events counted in the current period (at most `target`).")
    completed: bool = strawberry.field(description="Whether it is done (and rewarded) in the current period.")
    period_key: str = strawberry.field(description="The current period: a date (YYYY-MM-DD) for DAILY, `once` for ONCE.")

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
