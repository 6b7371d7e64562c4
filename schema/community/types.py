"""The community's object types: Post, Comment and Topic, and their enums.

One module for the three because they refer to each other (a post's comments and topics, a
comment's post, a topic's posts). Authors, products, like state and topics come through
request-scoped DataLoaders, so a page of 20 posts costs the same few queries as a page of one.

``body`` is the Markdown source as stored (already cleaned of raw HTML and script links);
``bodyHtml`` is the rendered, sanitised HTML and the only form to insert into a page.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import Annotated

import strawberry
from strawberry import relay

from models.community.comments import Comment as CommentModel
from models.community.posts import ContentStatus as ContentStatusValue
from models.community.posts import Post as PostModel
from models.community.posts import PostKind as PostKindValue
from models.community.topics import Topic as TopicModel
from resolvers.commerce import catalog
from resolvers.community import comments, posts, topics
from resolvers.community.visibility import can_see
from schema.accounts.users import User
from schema.base import After, Before, Connection, First, Last, describe_values, in_graph, node_keys
from schema.commerce.catalog import Product
from schema.context import Info

PostKind = strawberry.enum(
    PostKindValue,
    name="PostKind",
    description="REVIEW: about a product, rated 1 to 5. SHOWCASE: shows one of the author's delivered "
    "orders (its product, never a key). GUIDE. QUESTION: an answer can be accepted. DEMAND: a wanted "
    "product; merchants reply with one of theirs.",
)
describe_values(
    PostKind,
    REVIEW="About a product the author may have bought, with a 1-5 `rating`.",
    SHOWCASE="Shows one of the author's own delivered orders (晒单): its product, never its keys.",
    GUIDE="A how-to or tips, optionally about a product.",
    QUESTION="A question; its author may accept one comment as the answer.",
    DEMAND="A wanted product; merchants reply with one of theirs and the author may choose one.",
)
ContentStatus = describe_values(
    strawberry.enum(
        ContentStatusValue,
        name="ContentStatus",
        description="VISIBLE: public. HELD: waiting for a moderator. HIDDEN: hidden by a moderator. "
        "DELETED: deleted by its author. Only VISIBLE content is shown to others than its author and staff.",
    ),
    VISIBLE="Public.",
    HELD="Held by the word filter until a moderator releases or hides it; seen by its author and staff only.",
    HIDDEN="Hidden by a moderator (a moderator may restore it); seen by its author and staff only.",
    DELETED="Deleted by its author; seen by staff only.",
)


@strawberry.enum(description="Orders of a comment list.")
class CommentSort(Enum):
    THREAD = strawberry.enum_value("THREAD", description="Thread order: each comment followed by its replies, "
                                                         "depth first, oldest first at each level.")
    NEW = strawberry.enum_value("NEW", description="Newest first, whatever the depth.")
    TOP = strawberry.enum_value("TOP", description="Most liked first.")
    HOT = strawberry.enum_value("HOT", description="Likes weighed against age: recent liked comments first.")


async def user_of(info: Info, user_id: int) -> User | None:
    user = await info.context.loaders.user.load(user_id)
    return User.from_model(user) if user is not None else None


async def _product(info: Info, product_id: int | None) -> Product | None:
    """The product card, or null if it is gone or hidden from the viewer (batched)."""
    if product_id is None:
        return None
    loaders = info.context.loaders
    product = await loaders.product.load(product_id)
    if product is None:
        return None
    merchant = await loaders.merchant.load(product.merchant_id)
    if merchant is None or not catalog.product_visible(info.context.actor, product, merchant):
        return None
    return Product.from_model(product)


async def _liked(info: Info, loader_name: str, key: int) -> bool:
    user_id = info.context.actor.user_id
    if user_id is None:
        return False
    return await getattr(info.context.loaders, loader_name).load((user_id, key))


# -- the types --------------------------------------------------------------------------


@in_graph
@strawberry.type(description="A tag. A topic with a product is that product's purchaser circle.")
class Topic(relay.Node):
    id: relay.NodeID[int]
    slug: str = strawberry.field(description="Stable URL key, lower case, unique; the `topic` argument of feeds.")
    name: str = strawberry.field(description="Display name.")
    post_count: int = strawberry.field(description="Visible posts tagged with it.")
    created_at: datetime = strawberry.field(description="When the topic was first used.")
    _model: strawberry.Private[TopicModel]

    @strawberry.field(description="True for a product's purchaser circle.")
    def is_circle(self) -> bool:
        return self._model.product_id is not None

    @strawberry.field(description="The product whose buyers this circle is for; null for a plain topic, or if "
                                  "the product is not visible to the viewer.")
    async def product(self, info: Info) -> Annotated[Product, strawberry.lazy("schema.commerce.catalog")] | None:
        return await _product(info, self._model.product_id)

    @strawberry.field(description="Whether the viewer follows this topic (is in the circle).")
    async def viewer_is_member(self, info: Info) -> bool:
        user_id = info.context.actor.user_id
        return user_id is not None and await topics.in_circle(user_id, self.id)

    @strawberry.field(description="Visible posts in this topic, newest first.")
    async def posts(
        self, info: Info, first: First = None, after: After = None, last: Last = None, before: Before = None
    ) -> Connection[Post]:
        page = await posts.list_posts(
            info.context.actor, posts.PostFilter(topic=self.slug), first=first, after=after, last=last, before=before
        )
        return Connection.of(page, Post.from_model)

    @classmethod
    def from_model(cls, topic: TopicModel) -> Topic:
        return cls(
            id=topic.id, slug=topic.slug, name=topic.name, post_count=max(topic.post_count, 0),
            created_at=topic.created_at, _model=topic,
        )

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Topic | None]:
        ids = node_keys(node_ids)
        found = await info.context.loaders.topic.load_many([i for i in ids if i is not None])
        by_id = {t.id: t for t in found if t is not None}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]


@in_graph
@strawberry.type(
    description="A community post. Everyone sees VISIBLE posts; other statuses only their author and staff."
)
class Post(relay.Node):
    id: relay.NodeID[int]
    kind: PostKind = strawberry.field(description="What sort of post it is.")
    title: str = strawberry.field(description="Plain text title.")
    body: str = strawberry.field(description="Markdown source (raw HTML and script links removed).")
    body_html: str = strawberry.field(description="Rendered, sanitised HTML: the form to display.")
    rating: int | None = strawberry.field(description="REVIEW: 1 to 5; null for other kinds.")
    verified_purchase: bool = strawberry.field(
        description="The author had a delivered or completed order of the product when posting."
    )
    like_count: int = strawberry.field(description="How many users like it.")
    comment_count: int = strawberry.field(description="Visible comments, replies included.")
    status: ContentStatus = strawberry.field(description="Others than the author and staff see VISIBLE posts only.")
    created_at: datetime = strawberry.field(description="When it was posted.")
    edited_at: datetime | None = strawberry.field(description="When its author last edited it; null if never.")
    _model: strawberry.Private[PostModel]

    @strawberry.field(description="Who wrote it; null if the account was deactivated.")
    async def author(self, info: Info) -> User | None:
        return await user_of(info, self._model.author_id)

    @strawberry.field(description="The product card (null if it is no longer on sale to the viewer).")
    async def product(self, info: Info) -> Annotated[Product, strawberry.lazy("schema.commerce.catalog")] | None:
        return await _product(info, self._model.product_id)

    @strawberry.field(description="Whether the viewer likes it; false when anonymous.")
    async def viewer_has_liked(self, info: Info) -> bool:
        return await _liked(info, "post_liked", self.id)

    @strawberry.field(description="The topics it is tagged with.")
    async def topics(self, info: Info) -> list[Topic]:
        return [Topic.from_model(t) for t in await info.context.loaders.post_topics.load(self.id)]

    @strawberry.field(description="Comments, at most 100 a page (keyset cursors); THREAD order by default.")
    async def comments(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        sort: Annotated[CommentSort, strawberry.argument(description="The order of the list.")] = CommentSort.THREAD,
    ) -> Connection[Comment]:
        page = await comments.list_comments(
            info.context.actor, self._model, sort.value, first=first, after=after, last=last, before=before
        )
        return Connection.of(page, Comment.from_model)

    @strawberry.field(description="QUESTION: the accepted answer; null before one is accepted, for other kinds, "
                                  "or if it is not visible.")
    async def accepted_answer(self, info: Info) -> Comment | None:
        if self._model.kind != PostKindValue.QUESTION or self._model.accepted_comment_id is None:
            return None
        return await _comment(info, self._model.accepted_comment_id)

    @strawberry.field(description="DEMAND: the reply the author chose; null before, or for other kinds.")
    async def chosen_reply(self, info: Info) -> Comment | None:
        if self._model.kind != PostKindValue.DEMAND or self._model.accepted_comment_id is None:
            return None
        return await _comment(info, self._model.accepted_comment_id)

    @strawberry.field(description="DEMAND: the product the author chose; null before, or for other kinds.")
    async def fulfilled_by(self, info: Info) -> Annotated[Product, strawberry.lazy("schema.commerce.catalog")] | None:
        return await _product(info, self._model.fulfilled_by_product_id)

    @classmethod
    def from_model(cls, post: PostModel) -> Post:
        return cls(
            id=post.id, kind=post.kind, title=post.title, body=post.body, body_html=post.body_html,
            rating=post.rating, verified_purchase=post.verified_purchase, like_count=post.like_count,
            comment_count=max(post.comment_count, 0), status=post.status, created_at=post.created_at,
            edited_at=post.edited_at, _model=post,
        )

    @classmethod
    async def resolve_nodes(cls, *, info: Info, node_ids: Iterable[str], required: bool = False) -> list[Post | None]:
        ids = node_keys(node_ids)
        found = await info.context.loaders.post.load_many([i for i in ids if i is not None])
        actor = info.context.actor
        by_id = {p.id: p for p in found if p is not None and can_see(actor, p.status, p.author_id)}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]


async def _comment(info: Info, comment_id: int) -> Comment | None:
    comment = await info.context.loaders.comment.load(comment_id)
    actor = info.context.actor
    if comment is None or not can_see(actor, comment.status, comment.author_id):
        return None
    return Comment.from_model(comment)


@in_graph
@strawberry.type(
    description="A comment on a post, or a reply to a comment. Seen by whoever may see its post, when VISIBLE "
                "(other statuses: its author and staff)."
)
class Comment(relay.Node):
    id: relay.NodeID[int]
    body: str = strawberry.field(description="Markdown source (raw HTML and script links removed).")
    body_html: str = strawberry.field(description="Rendered, sanitised HTML: the form to display.")
    depth: int = strawberry.field(description=f"0 for a reply to the post; at most {comments.MAX_DEPTH - 1}.")
    like_count: int = strawberry.field(description="How many users like it.")
    status: ContentStatus = strawberry.field(description="Whether it is public.")
    created_at: datetime = strawberry.field(description="When it was posted.")
    _model: strawberry.Private[CommentModel]

    @strawberry.field(description="Who wrote it; null if the account was deactivated.")
    async def author(self, info: Info) -> User | None:
        return await user_of(info, self._model.author_id)

    @strawberry.field(description="The comment replied to (null for a reply to the post or one not visible).")
    async def parent(self, info: Info) -> Comment | None:
        if self._model.parent_id is None:
            return None
        return await _comment(info, self._model.parent_id)

    @strawberry.field(description="The post it belongs to; null if the viewer may not see the post.")
    async def post(self, info: Info) -> Post | None:
        post = await info.context.loaders.post.load(self._model.post_id)
        if post is None or not can_see(info.context.actor, post.status, post.author_id):
            return None
        return Post.from_model(post)

    @strawberry.field(description="A merchant's answer to a DEMAND: the product offered.")
    async def product(self, info: Info) -> Annotated[Product, strawberry.lazy("schema.commerce.catalog")] | None:
        return await _product(info, self._model.product_id)

    @strawberry.field(description="Whether the viewer likes it; false when anonymous.")
    async def viewer_has_liked(self, info: Info) -> bool:
        return await _liked(info, "comment_liked", self.id)

    @classmethod
    def from_model(cls, comment: CommentModel) -> Comment:
        return cls(
            id=comment.id, body=comment.body, body_html=comment.body_html, depth=comment.depth,
            like_count=comment.like_count, status=comment.status, created_at=comment.created_at, _model=comment,
        )

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Comment | None]:
        ids = node_keys(node_ids)
        loaders = info.context.loaders
        found = [c for c in await loaders.comment.load_many([i for i in ids if i is not None]) if c is not None]
        posts = await loaders.post.load_many(sorted({c.post_id for c in found}))
        actor = info.context.actor
        open_posts = {p.id for p in posts if p is not None and can_see(actor, p.status, p.author_id)}
        by_id = {
            c.id: c for c in found if c.post_id in open_posts and can_see(actor, c.status, c.author_id)
        }
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]


def forget_post(info: Info, post_id: int) -> None:
    """Drop a post from this request's loader: a mutation changed it, re-read it."""
    loader = info.context.loaders.post
    try:
        loader.clear(post_id)
    except KeyError:
        pass
