"""The training job: behaviour in, precomputed lists out (resolvers/discovery/model.py does the numbers).

What a user did, weighted by kind and decayed by age (``KAMENG_RECOMMEND_HALF_LIFE_DAYS``):
purchases (paid orders) weigh most, then likes and posts written, circle joins, clicks on a
recommendation, product views and posts read. A post stands for the products it is about: its
own product and the products of its purchaser-circle topics, so reading or liking a guide is
interest in what the guide is about ("community behaviour moves commerce"). Events of users who
turned personalisation off are left out.

The lists written (models/discovery/recommendations.py): per user or device (HOME), per
product (similar products and the guides and reviews worth reading after buying it), per
purchaser circle, per post, per category, and the cold-start lists ``trending`` and ``new``.
Unavailable products (hidden, a suspended shop's, sold out) never enter a list, nor a one-off
product (``max_quantity`` 1: an account, a membership) its buyer already owns.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import structlog

from kameng.settings import get_settings
from models.commerce.orders import Order, OrderStatus
from models.community.posts import ContentStatus, Post
from models.community.reactions import PostLike
from models.community.topics import PostTopic, Topic
from models.discovery.events import BehaviourEvent, EventKind
from models.discovery.recommendations import RecommendationModel
from resolvers.discovery import catalogue, model, storage
from resolvers.discovery.reasons import Reason

log = structlog.get_logger("kameng.recommendations")

#: Weight of one interaction of each kind, before decay.
WEIGHTS = {"purchase": 5.0, "like": 3.0, "wrote": 3.0, "circle": 2.0, "click": 1.5, "view": 1.0, "read": 1.0}
PAID = (OrderStatus.PAID, OrderStatus.DELIVERING, OrderStatus.DELIVERED, OrderStatus.COMPLETED)
#: How much a product the user showed interest in directly (read about, viewed) counts on HOME,
#: next to the model's scores (normalised to at most 1 per user).
DIRECT_INTEREST = 1.0
POSTS_PER_PRODUCT = 5


@dataclass
class Signals:
    owners: list[str] = field(default_factory=list)
    products: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    bought: set[tuple[str, int]] = field(default_factory=set)
    #: (owner, product) -> the post that made it interesting (the latest one).
    via_post: dict[tuple[str, int], int] = field(default_factory=dict)

    def add(self, owner: str, product: int, kind: str, at: datetime, half_life: float, now: datetime) -> None:
        self.owners.append(owner)
        self.products.append(product)
        self.weights.append(WEIGHTS[kind] * model.decay_weight((now - at).total_seconds(), half_life))
        self.times.append(at.timestamp())
        if kind == "purchase":
            self.bought.add((owner, product))


def _owner(user_id: int | None, device_id: str | None) -> str | None:
    return f"u:{user_id}" if user_id is not None else (f"d:{device_id}" if device_id else None)


async def post_products(post_ids: set[int]) -> dict[int, set[int]]:
    """The products each post is about: its own and its circle topics' products."""
    links: dict[int, set[int]] = defaultdict(set)
    if not post_ids:
        return links
    for pid, product in await Post.filter(id__in=post_ids, product_id__isnull=False).values_list("id", "product_id"):
        links[pid].add(product)
    rows = await PostTopic.filter(post_id__in=post_ids, topic__product_id__isnull=False).values_list(
        "post_id", "topic__product_id")
    for pid, product in rows:
        links[pid].add(product)
    return links


async def gather(now: datetime) -> Signals:
    settings = get_settings()
    since = now - timedelta(days=settings.recommend_window_days)
    half_life = settings.recommend_half_life_days * 86400
    signals = Signals()
    # Only users who let their behaviour be used (personalisation on; deleted accounts have it off).
    orders = await Order.filter(status__in=PAID, paid_at__gte=since, buyer__personalisation=True).values_list(
        "buyer_id", "product_id", "paid_at")
    for buyer, product, at in orders:
        signals.add(f"u:{buyer}", product, "purchase", at, half_life, now)
    events = await BehaviourEvent.filter(
        occurred_at__gte=since, personalised=True,
        kind__in=[EventKind.PRODUCT_VIEW, EventKind.RECOMMENDATION_CLICK, EventKind.POST_VIEW,
                  EventKind.COMMENTED, EventKind.CIRCLE_JOINED],
    ).values_list("kind", "user_id", "device_id", "product_id", "post_id", "topic_id", "occurred_at")
    post_events: list[tuple[str, int, str, datetime]] = []
    topic_events: list[tuple[str, int, datetime]] = []
    for kind, user, device, product, post, topic, at in events:
        owner = _owner(user, device)
        if owner is None:
            continue
        if kind in (EventKind.PRODUCT_VIEW, EventKind.RECOMMENDATION_CLICK) and product is not None:
            signals.add(owner, product, "view" if kind == EventKind.PRODUCT_VIEW else "click", at, half_life, now)
        elif kind in (EventKind.POST_VIEW, EventKind.COMMENTED) and post is not None:
            post_events.append((owner, post, "read" if kind == EventKind.POST_VIEW else "like", at))
        elif kind == EventKind.CIRCLE_JOINED and topic is not None:
            topic_events.append((owner, topic, at))
    likes = PostLike.filter(created_at__gte=since, user__personalisation=True)
    for user, post, at in await likes.values_list("user_id", "post_id", "created_at"):
        post_events.append((f"u:{user}", post, "like", at))
    for author, post, at in await Post.filter(created_at__gte=since, status=ContentStatus.VISIBLE,
                                                   author__personalisation=True).values_list(
            "author_id", "id", "created_at"):
        post_events.append((f"u:{author}", post, "wrote", at))
    links = await post_products({post for _, post, _, _ in post_events})
    for owner, post, kind, at in sorted(post_events, key=lambda e: e[3]):
        for product in links.get(post, ()):
            signals.add(owner, product, kind, at, half_life, now)
            signals.via_post[(owner, product)] = post
    if topic_events:
        circles = dict(await Topic.filter(id__in={t for _, t, _ in topic_events}, product_id__isnull=False)
                       .values_list("id", "product_id"))
        for owner, topic, at in topic_events:
            if topic in circles:
                signals.add(owner, circles[topic], "circle", at, half_life, now)
    return signals


@dataclass
class Trained:
    version: str
    lists: dict[str, list[list[object]]]
    posts: dict[str, list[int]]
    stats: dict[str, float]


def _top(scores: np.ndarray, n: int, allowed: np.ndarray) -> list[int]:
    masked = np.where(allowed & (scores > 0), scores, -np.inf)
    order = np.argsort(-masked, kind="stable")[:n]
    return [int(i) for i in order if np.isfinite(masked[i])]


def compute(signals: Signals, shelf: catalogue.Shelf, version: str, list_size: int, max_items: int,
            post_links: dict[int, set[int]] | None = None) -> Trained:
    """Everything numeric, off the event loop: fit, then every list."""
    lists: dict[str, list[list[object]]] = {}
    posts: dict[str, list[int]] = {}
    stats: dict[str, float] = {"interactions": len(signals.owners)}
    owner_keys: list[str] = []
    products: list[int] = []
    if signals.owners:
        log_, owner_keys_raw, product_keys_raw = model.Log.from_keys(
            signals.owners, signals.products, signals.times, signals.weights)
        owner_keys, products = [str(k) for k in owner_keys_raw], [int(k) for k in product_keys_raw]
        fitted = model.fit(log_, max_items=max_items)
        stats.update(users=log_.n_users, items=log_.n_items, lam=fitted.lam,
                     half_life_events=fitted.half_life_events, train_seconds=fitted.train_seconds)
        x = model.decayed_matrix(log_, fitted.half_life_events).tocsr()
        available = np.array([shelf.available(p) for p in products], dtype=bool)
        _user_lists(lists, signals, shelf, fitted, x, owner_keys, products, available, list_size)
        _item_lists(lists, shelf, fitted, x, products, available, list_size)
        pop = np.asarray(x.sum(axis=0)).ravel()
        trending = _top(pop, list_size, available)
        lists["trending"] = [[products[i], float(pop[i]), *Reason.trending()] for i in trending]
        by_category: dict[int, list[list[object]]] = defaultdict(list)
        for i in _top(pop, len(products), available):
            category = shelf.category(products[i])
            if category is not None and len(by_category[category]) < list_size:
                by_category[category].append([products[i], float(pop[i]), *Reason.trending()])
        lists.update({f"cat:{c}": rows for c, rows in by_category.items()})
    lists["new"] = [[p, score, *Reason.new_and_reviewed()] for p, score in shelf.new_and_well_reviewed(list_size)]
    for post, linked in (post_links or {}).items():
        rows = [[p, 1.0, *Reason.from_guide(post, shelf.post_title(post))] for p in sorted(linked) if shelf.available(p)]
        for p in sorted(linked):
            rows += lists.get(f"p:{p}", [])[:list_size]
        if rows:
            lists[f"post:{post}"] = rows[:list_size]
    for product, post_ids in shelf.reading.items():
        posts[f"p:{product}"] = post_ids
        lists.setdefault(f"p:{product}", [])
    return Trained(version, lists, posts, stats)


def _user_lists(lists: dict[str, list[list[object]]], signals: Signals, shelf: catalogue.Shelf, fitted: model.Model,
                x, owner_keys: list[str], products: list[int], available: np.ndarray, n: int) -> None:  # type: ignore[no-untyped-def]
    b_full = np.zeros((len(products), len(products)))
    b_full[np.ix_(fitted.items, fitted.items)] = fitted.b
    for row, owner in enumerate(owner_keys):
        xr = x[row]
        cols, vals = xr.indices, xr.data
        scores = np.asarray(xr @ b_full).ravel()
        top = scores.max()
        scores = scores / top if top > 0 else np.zeros_like(scores)
        direct = np.zeros(len(products))
        for c, v in zip(cols, vals, strict=True):
            if (owner, products[c]) not in signals.bought:
                direct[c] = DIRECT_INTEREST * v / vals.max()
        allowed = available.copy()
        for c in cols:
            if (owner, products[c]) in signals.bought and shelf.one_off(products[c]):
                allowed[c] = False
        total = scores + direct
        rows: list[list[object]] = []
        for i in _top(total, n, allowed):
            post = signals.via_post.get((owner, products[i]))
            if post is not None and direct[i] > 0:
                reason = Reason.from_guide(post, shelf.post_title(post))
            else:
                contrib = vals * b_full[cols, i]
                j = int(cols[int(np.argmax(contrib))]) if contrib.size else i
                if (owner, products[j]) in signals.bought:
                    reason = Reason.because_you_bought(products[j], shelf.title(products[j]))
                else:
                    reason = Reason.popular_with_buyers_of(products[j], shelf.title(products[j]))
            rows.append([products[i], round(float(total[i]), 6), *reason])
        if rows:
            lists[owner] = rows


def _item_lists(lists: dict[str, list[list[object]]], shelf: catalogue.Shelf, fitted: model.Model, x,  # type: ignore[no-untyped-def]
                products: list[int], available: np.ndarray, n: int) -> None:
    similar = fitted.similar(n * 2)
    for i, neighbours in similar.items():
        rows = [[products[j], round(s, 6), *Reason.popular_with_buyers_of(products[i], shelf.title(products[i]))]
                for j, s in neighbours if available[j]][:n]
        if rows:
            lists[f"p:{products[i]}"] = rows
    binary = (x > 0).astype(np.float64).tocsc()
    index = {p: i for i, p in enumerate(products)}
    for product in shelf.circles:
        i = index.get(product)
        if i is None:
            continue
        members = binary[:, i].nonzero()[0]
        if members.size == 0:
            continue
        scores = np.asarray(x[members].sum(axis=0)).ravel()
        allowed = available.copy()
        allowed[i] = False
        rows = [[products[j], round(float(scores[j]), 6), *Reason.trending_in_circle(product, shelf.title(product))]
                for j in _top(scores, n, allowed)]
        if rows:
            lists[f"c:{product}"] = rows


async def train(now: datetime | None = None) -> RecommendationModel:
    """Gather, fit and write every list (the database, and Redis when configured)."""
    settings = get_settings()
    now = now or datetime.now(UTC)
    signals = await gather(now)
    shelf = await catalogue.load_shelf(now, POSTS_PER_PRODUCT)
    version = f"ease-{now.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"
    recent = set(await Post.filter(status=ContentStatus.VISIBLE, created_at__gte=now - timedelta(
        days=settings.recommend_window_days)).values_list("id", flat=True))
    post_links = await post_products(recent)
    trained = await asyncio.to_thread(compute, signals, shelf, version, settings.recommend_list_size,
                                      settings.recommend_max_items, post_links)
    row = await storage.publish(trained.version, trained.lists, trained.posts, trained.stats, now)
    log.info("recommendations trained", version=version, lists=len(trained.lists), **trained.stats)
    return row


async def sweep_training() -> bool:
    """Retrain when the last run is older than ``KAMENG_RECOMMEND_TRAIN_SECONDS``."""
    settings = get_settings()
    last = await RecommendationModel.all().order_by("-trained_at").first().values_list("trained_at", flat=True)
    now = datetime.now(UTC)
    if last is not None and (now - last).total_seconds() < settings.recommend_train_seconds:
        return False
    if not await storage.claim_training(settings.recommend_train_seconds):
        return False
    await train(now)
    return True
