"""The dramatiq broker, chosen from ``BROKER_URL``, with every job declared on it.

* ``redis://...``  -> RedisBroker (namespaced by ``KAMENG_NAMESPACE``)
* ``amqp://...``   -> RabbitmqBroker (queue names prefixed by the namespace)
* unset            -> StubBroker, consumed by the in-process worker (embedded default)
"""

from __future__ import annotations

import uuid
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker

from kameng.settings import Settings
from workers.actors import load_all


def queue_name(settings: Settings, queue: str) -> str:
    return f"{settings.namespace}.{queue}"


def build_broker(settings: Settings) -> dramatiq.Broker:
    url = settings.broker_url
    if url is None:
        broker: dramatiq.Broker = StubBroker()
    elif url.startswith(("redis://", "rediss://", "unix://")):
        from dramatiq.brokers.redis import RedisBroker

        broker = RedisBroker(url=url, namespace=f"{settings.namespace}-dramatiq")
    elif url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        broker = RabbitmqBroker(url=url, confirm_delivery=True)
    else:
        raise ValueError(f"BROKER_URL must be redis://, rediss:// or amqp://, not {url.split(':', 1)[0]}://")
    for spec in load_all().values():
        dramatiq.actor(
            spec.fn,
            broker=broker,
            actor_name=spec.name,
            queue_name=queue_name(settings, spec.queue),
            **spec.options,
        )
    return broker


def message_id_for(outbox_id: int, namespace: str) -> str:
    """A stable message id per outbox row: a re-sent row carries the same id."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kameng:{namespace}:outbox:{outbox_id}"))


def send(
    broker: dramatiq.Broker, actor_name: str, kwargs: dict[str, Any], message_id: str, delay_ms: int | None = None
) -> None:
    actor = broker.get_actor(actor_name)
    message = actor.message_with_options(kwargs=kwargs).copy(message_id=message_id)
    broker.enqueue(message, delay=delay_ms)
