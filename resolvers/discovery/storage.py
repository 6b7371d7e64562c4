"""Where the precomputed lists live: the ``recommendation_list`` table, copied into Redis when
one is configured, so that every API process serves the same lists with at most one lookup.

A training run replaces all lists in one transaction (readers see the old set or the new one)
and writes the Redis copy before it commits, under ``profiling.writing()``, deleting the copies
of the lists the new set leaves out; a Redis miss falls back to the table. An erasure removes a
user's list from both (``forget_user``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from tortoise.transactions import in_transaction

from kameng import runtime
from kameng.settings import get_settings
from models.discovery.recommendations import RecommendationList, RecommendationModel
from resolvers.accounts import profiling

BATCH = 500
USER = "u:"  # a user's HOME list: u:<id>; d:<device>, p:, c:, post:, cat: are no one's


def _key(owner: str) -> str:
    return f"{get_settings().namespace}:reco:{owner}"


def _redis() -> Any:
    return runtime.redis() if runtime.is_started() else None


async def publish(version: str, lists: dict[str, list[list[object]]], posts: dict[str, list[int]],
                  stats: dict[str, float], now: datetime) -> RecommendationModel:
    owners = sorted(set(lists) | set(posts))
    async with in_transaction():
        await profiling.writing()
        if await RecommendationModel.filter(trained_at__gt=now).exists():
            # A run that started later (with newer behaviour) already published: keep its lists.
            return await RecommendationModel.filter(trained_at__gt=now).order_by("-trained_at").first()  # type: ignore[return-value]
        # A user erased (deleted, opted out) since the training read their behaviour gets no list.
        users = {o: int(o[len(USER):]) for o in owners if o.startswith(USER) and o[len(USER):].isdigit()}
        keep = await profiling.profiled(users.values())
        rows = [RecommendationList(owner=o, model_version=version, items=lists.get(o, []), posts=posts.get(o, []),
                                   updated_at=now) for o in owners if o not in users or users[o] in keep]
        redis = _redis()
        dropped: list[str] = []
        if redis is not None:  # the lists the new set leaves out lose their copy below, or serving,
            # which reads the copy first, would go on serving them after the table dropped them
            before = await RecommendationList.all().values_list("owner", flat=True)
            dropped = sorted(set(before).difference(row.owner for row in rows))
        await RecommendationList.all().delete()
        for start in range(0, len(rows), BATCH):
            await RecommendationList.bulk_create(rows[start:start + BATCH])
        model_row = await RecommendationModel.create(
            version=version, trained_at=now, interactions=int(stats.get("interactions", 0)),
            users=int(stats.get("users", 0)), items=int(stats.get("items", 0)), lam=float(stats.get("lam", 0.0)),
            half_life_events=float(stats.get("half_life_events", 0.0)),
            train_seconds=float(stats.get("train_seconds", 0.0)), lists=len(rows),
        )
        # Copied before the commit, still under the lock, so that an erasure waiting for it
        # deletes the copy too. A failed commit leaves the new copy beside the old rows: the
        # next run replaces both.
        if redis is not None:
            ttl = int(max(get_settings().recommend_train_seconds * 3, 3600))
            async with redis.pipeline(transaction=False) as pipe:
                for row in rows:
                    pipe.set(_key(row.owner), orjson.dumps([version, row.items, row.posts]), ex=ttl)
                for start in range(0, len(dropped), BATCH):
                    pipe.delete(*(_key(owner) for owner in dropped[start:start + BATCH]))
                await pipe.execute()
    return model_row


async def forget_user(user_id: int) -> None:
    """The user's HOME list, row and copy (an erasure, after ``profiling.erasing()``): serving reads
    the copy first."""
    await RecommendationList.filter(owner=f"{USER}{user_id}").delete()
    redis = _redis()
    if redis is not None:
        await redis.delete(_key(f"{USER}{user_id}"))


async def fetch(owners: list[str]) -> dict[str, tuple[str, list[list[Any]], list[int]]]:
    """(version, items, posts) per owner that has a list: from Redis when every owner is
    there, else one query."""
    redis = _redis()
    if redis is not None:
        values = await redis.mget([_key(o) for o in owners])
        if all(v is not None for v in values):
            return {o: tuple(orjson.loads(v)) for o, v in zip(owners, values, strict=True)}  # type: ignore[misc]
    rows = await RecommendationList.filter(owner__in=owners).values_list("owner", "model_version", "items", "posts")
    return {owner: (version, items, posts) for owner, version, items, posts in rows}


async def claim_training(seconds: float) -> bool:
    """One training run at a time across processes when Redis is there (a lock that expires on
    its own); without Redis there is one process, and publishing keeps the newest run anyway."""
    redis = _redis()
    if redis is None:
        return True
    return bool(await redis.set(_key("training-lock"), "1", nx=True, ex=max(int(seconds), 1)))
