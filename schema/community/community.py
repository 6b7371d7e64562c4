"""The community in the graph: posts, threaded comments, likes, topics and purchaser
circles, reports and moderation.

Thin: GraphQL values in, resolvers.community.community / resolvers.community.moderation called, types out.
Authors, products, like state, topics and report counts come through request-scoped
DataLoaders, so a page of 20 posts costs the same few queries as a page of one.

``body`` is the Markdown source as stored (already cleaned of raw HTML and script links);
``bodyHtml`` is the rendered, sanitised HTML and the only form to insert into a page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any

import strawberry
from strawberry import relay

from models.community.community import Comment as CommentModel
from models.community.community import ContentStatus as ContentStatusValue
from models.community.community import Post as PostModel
from models.community.community import PostKind as PostKindValue
from models.community.community import Topic as TopicModel
from resolvers.commerce import catalog
from resolvers.community import community, moderation
from resolvers.errors import invalid
from schema.accounts.users import User
from schema.base import Connection, UserError, decode_id, run_mutation
from schema.context import Info

if TYPE_CHECKING:
    from schema.commerce.catalog import Product

PostKind = strawberry.enum(
    PostKindValue,
    name="PostKind",
    description="REVIEW: about a product, rated 1 to 5. SHOWCASE: shows one of the author's delivered "
    "orders (its product, never a key). GUIDE. QUESTION: an answer can be accepted. DEMAND: a wanted "
    "product; merchants reply with one of theirs.",
)
ContentStatus = strawberry.enum(
    ContentStatusValue,
    name="ContentStatus",
    description="VISIBLE: public. HELD: waiting for a moderator. HIDDEN: hidden by a moderator. "
    "DELETED: deleted by its author. Only VISIBLE content is shown to others than its author and staff.",
)


@strawberry.enum(description="THREAD: depth-first thread order. NEW: newest first. TOP: most liked. "
                 "HOT: likes weighed against age.")
class CommentSort(Enum):
    THREAD = "THREAD"
    NEW = "NEW"
    TOP = "TOP"
    HOT = "HOT"


def _ids(node_ids: Iterable[str]) -> list[int | None]:
    parsed: list[int | None] = []
    for node_id in node_ids:
        try:
            parsed.append(int(node_id))
        except ValueError:
            parsed.append(None)
    return parsed


async def _user(info: Info, user_id: int) -> User | None:
    user = await info.context.loaders.user.load(user_id)
    return User.from_model(user) if user is not None else None


async def _product(info: Info, product_id: int | None) -> Product | None:
    """The product card, or null if it is gone or hidden from the viewer (batched)."""
    from schema.commerce.catalog import Product

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


# -- types ------------------------------------------------------------------------------


@strawberry.type(description="A tag. A topic with a product is that product's purchaser circle.")
class Topic(relay.Node):
    id: relay.NodeID[int]
    slug: str
    name: str
    post_count: int
    created_at: datetime
    _model: strawberry.Private[TopicModel]

    @strawberry.field(description="True for a product's purchaser circle.")
    def is_circle(self) -> bool:
        return self._model.product_id is not None

    @strawberry.field(description="The product whose buyers this circle is for.")
    async def product(self, info: Info) -> Annotated[Product, strawberry.lazy("schema.commerce.catalog")] | None:
        return await _product(info, self._model.product_id)

    @strawberry.field(description="Whether the viewer follows this topic (is in the circle).")
    async def viewer_is_member(self, info: Info) -> bool:
        user_id = info.context.actor.user_id
        return user_id is not None and await community.in_circle(user_id, self.id)

    @strawberry.field(description="Visible posts in this topic, newest first.")
    async def posts(self, info: Info, first: int | None = None, after: str | None = None) -> Connection[Post]:
        page = await community.list_posts(
            info.context.actor, community.PostFilter(topic=self.slug), first=first, after=after
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
        ids = _ids(node_ids)
        found = await info.context.loaders.topic.load_many([i for i in ids if i is not None])
        by_id = {t.id: t for t in found if t is not None}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]


@strawberry.type
class Post(relay.Node):
    id: relay.NodeID[int]
    kind: PostKind
    title: str
    body: str = strawberry.field(description="Markdown source (raw HTML and script links removed).")
    body_html: str = strawberry.field(description="Rendered, sanitised HTML: the form to display.")
    rating: int | None = strawberry.field(description="REVIEW: 1 to 5.")
    verified_purchase: bool = strawberry.field(
        description="The author had a delivered or completed order of the product when posting."
    )
    like_count: int
    comment_count: int
    status: ContentStatus = strawberry.field(description="Others than the author and staff see VISIBLE posts only.")
    created_at: datetime
    edited_at: datetime | None
    _model: strawberry.Private[PostModel]

    @strawberry.field
    async def author(self, info: Info) -> User | None:
        return await _user(info, self._model.author_id)

    @strawberry.field(description="The product card (null if it is no longer on sale to the viewer).")
    async def product(self, info: Info) -> Annotated[Product, strawberry.lazy("schema.commerce.catalog")] | None:
        return await _product(info, self._model.product_id)

    @strawberry.field
    async def viewer_has_liked(self, info: Info) -> bool:
        return await _liked(info, "post_liked", self.id)

    @strawberry.field
    async def topics(self, info: Info) -> list[Topic]:
        return [Topic.from_model(t) for t in await info.context.loaders.post_topics.load(self.id)]

    @strawberry.field(description="Comments, at most 100 a page (keyset cursors); THREAD order by default.")
    async def comments(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        sort: CommentSort = CommentSort.THREAD,
    ) -> Connection[Comment]:
        page = await community.list_comments(
            info.context.actor, self._model, sort.value, first=first, after=after, last=last, before=before
        )
        return Connection.of(page, Comment.from_model)

    @strawberry.field(description="QUESTION: the accepted answer.")
    async def accepted_answer(self, info: Info) -> Comment | None:
        if self._model.kind != PostKindValue.QUESTION or self._model.accepted_comment_id is None:
            return None
        return await _comment(info, self._model.accepted_comment_id)

    @strawberry.field(description="DEMAND: the reply the author chose.")
    async def chosen_reply(self, info: Info) -> Comment | None:
        if self._model.kind != PostKindValue.DEMAND or self._model.accepted_comment_id is None:
            return None
        return await _comment(info, self._model.accepted_comment_id)

    @strawberry.field(description="DEMAND: the product the author chose.")
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
        ids = _ids(node_ids)
        found = await info.context.loaders.post.load_many([i for i in ids if i is not None])
        actor = info.context.actor
        by_id = {p.id: p for p in found if p is not None and community.can_see(actor, p.status, p.author_id)}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]


async def _comment(info: Info, comment_id: int) -> Comment | None:
    comment = await info.context.loaders.comment.load(comment_id)
    actor = info.context.actor
    if comment is None or not community.can_see(actor, comment.status, comment.author_id):
        return None
    return Comment.from_model(comment)


@strawberry.type
class Comment(relay.Node):
    id: relay.NodeID[int]
    body: str = strawberry.field(description="Markdown source (raw HTML and script links removed).")
    body_html: str = strawberry.field(description="Rendered, sanitised HTML: the form to display.")
    depth: int = strawberry.field(description=f"0 for a reply to the post; at most {community.MAX_DEPTH - 1}.")
    like_count: int
    status: ContentStatus
    created_at: datetime
    _model: strawberry.Private[CommentModel]

    @strawberry.field
    async def author(self, info: Info) -> User | None:
        return await _user(info, self._model.author_id)

    @strawberry.field(description="The comment replied to (null for a reply to the post or one not visible).")
    async def parent(self, info: Info) -> Comment | None:
        if self._model.parent_id is None:
            return None
        return await _comment(info, self._model.parent_id)

    @strawberry.field
    async def post(self, info: Info) -> Post | None:
        post = await info.context.loaders.post.load(self._model.post_id)
        if post is None or not community.can_see(info.context.actor, post.status, post.author_id):
            return None
        return Post.from_model(post)

    @strawberry.field(description="A merchant's answer to a DEMAND: the product offered.")
    async def product(self, info: Info) -> Annotated[Product, strawberry.lazy("schema.commerce.catalog")] | None:
        return await _product(info, self._model.product_id)

    @strawberry.field
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
        ids = _ids(node_ids)
        loaders = info.context.loaders
        found = [c for c in await loaders.comment.load_many([i for i in ids if i is not None]) if c is not None]
        posts = await loaders.post.load_many(sorted({c.post_id for c in found}))
        actor = info.context.actor
        open_posts = {p.id for p in posts if p is not None and community.can_see(actor, p.status, p.author_id)}
        by_id = {
            c.id: c for c in found if c.post_id in open_posts and community.can_see(actor, c.status, c.author_id)
        }
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]


ModeratedContent = Annotated[Post | Comment, strawberry.union("ModeratedContent")]


def _content(item: PostModel | CommentModel) -> Post | Comment:
    return Post.from_model(item) if isinstance(item, PostModel) else Comment.from_model(item)


@strawberry.enum
class QueueItemKind(Enum):
    REPORT = "REPORT"
    HELD = "HELD"


@strawberry.type(description="An open report or a held post or comment, for moderators.")
class ModerationQueueItem:
    kind: QueueItemKind
    reason: str
    created_at: datetime
    _item: strawberry.Private[moderation.QueueItem]

    @strawberry.field
    async def target(self, info: Info) -> ModeratedContent | None:
        target = self._item.target
        if target.kind == moderation.POST:
            post = await info.context.loaders.post.load(target.id)
            return Post.from_model(post) if post is not None else None
        comment = await info.context.loaders.comment.load(target.id)
        return Comment.from_model(comment) if comment is not None else None

    @strawberry.field(description="The user who reported (REPORT items).")
    async def reporter(self, info: Info) -> User | None:
        reporter_id = moderation.describe(self._item)["reporter_id"]
        return await _user(info, reporter_id) if reporter_id is not None else None

    @strawberry.field(description="Open reports on the target.")
    async def open_reports(self, info: Info) -> int:
        target = self._item.target
        return await info.context.loaders.open_reports.load((target.kind, target.id))

    @classmethod
    def of(cls, item: moderation.QueueItem) -> ModerationQueueItem:
        return cls(
            kind=QueueItemKind.REPORT if item.source == moderation.REPORT else QueueItemKind.HELD,
            reason=moderation.describe(item)["reason"],
            created_at=item.created_at,
            _item=item,
        )


# -- queries ----------------------------------------------------------------------------


@strawberry.input(name="PostFilter")
class PostFilterInput:
    kind: PostKind | None = None
    author_id: strawberry.ID | None = None
    product_id: strawberry.ID | None = None
    topic: str | None = strawberry.field(default=None, description="A topic slug.")

    def to_filter(self) -> community.PostFilter:
        return community.PostFilter(
            kind=self.kind,
            author_id=decode_id(self.author_id, "User", "filter.authorId") if self.author_id else None,
            product_id=decode_id(self.product_id, "Product", "filter.productId") if self.product_id else None,
            topic=self.topic,
        )


@strawberry.type
class CommunityQueries:
    @strawberry.field(description="Posts, newest first: visible ones, and the viewer's own held or hidden ones.")
    async def posts(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: PostFilterInput | None = None,
    ) -> Connection[Post]:
        listing = filter.to_filter() if filter is not None else community.PostFilter()
        page = await community.list_posts(
            info.context.actor, listing, first=first, after=after, last=last, before=before
        )
        return Connection.of(page, Post.from_model)

    @strawberry.field(description="A post; null if it does not exist or the viewer may not see it.")
    async def post(self, info: Info, id: strawberry.ID) -> Post | None:
        try:
            post_id = decode_id(id, "Post", "id")
        except Exception:
            return None
        (post,) = await Post.resolve_nodes(info=info, node_ids=[str(post_id)])
        return post

    @strawberry.field(description="A topic by its slug.")
    async def topic(self, info: Info, slug: str) -> Topic | None:
        try:
            (clean,) = community.topic_slugs([slug])
        except Exception:
            return None
        found = await TopicModel.filter(slug=clean).first()
        return Topic.from_model(found) if found is not None else None

    @strawberry.field(description="Moderators and admins: open reports and held content, oldest first.")
    async def moderation_queue(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> Connection[ModerationQueueItem]:
        page = await moderation.queue(info.context.actor, first=first, after=after)
        return Connection.of(page, ModerationQueueItem.of)


# -- mutations --------------------------------------------------------------------------


def _optional_id(value: strawberry.ID | None, expected: str, field: str) -> int | None:
    return decode_id(value, expected, field) if value is not None else None


def _target(value: strawberry.ID) -> moderation.Target:
    try:
        gid = relay.GlobalID.from_id(str(value))
        kind = {"Post": moderation.POST, "Comment": moderation.COMMENT}[gid.type_name]
        return moderation.Target(kind, int(gid.node_id))
    except (ValueError, TypeError, KeyError):
        raise invalid("targetId", "Expected the ID of a Post or a Comment.") from None


@strawberry.input
class CreatePostInput:
    kind: PostKind
    title: str
    body: str = strawberry.field(description="Markdown (raw HTML is shown as text).")
    product_id: strawberry.ID | None = strawberry.field(default=None, description="REVIEW: required. Others: a product card.")
    order_id: strawberry.ID | None = strawberry.field(default=None, description="SHOWCASE: your delivered order.")
    rating: int | None = strawberry.field(default=None, description="REVIEW: 1 to 5.")
    topic: str | None = strawberry.field(default=None, description="A topic slug (created on first use).")
    topics: list[str] | None = strawberry.field(default=None, description="More topic slugs (at most 5 in all).")


@strawberry.type
class CreatePostPayload:
    errors: list[UserError]
    post: Post | None = None


@strawberry.input
class EditPostInput:
    post_id: strawberry.ID
    title: str | None = None
    body: str | None = None
    rating: int | None = None


@strawberry.type
class EditPostPayload:
    errors: list[UserError]
    post: Post | None = None


@strawberry.input
class DeletePostInput:
    post_id: strawberry.ID


@strawberry.type
class DeletePostPayload:
    errors: list[UserError]
    post: Post | None = None


@strawberry.input
class AddCommentInput:
    post_id: strawberry.ID
    body: str
    parent_id: strawberry.ID | None = strawberry.field(
        default=None,
        description=f"Reply to this comment. Past depth {community.MAX_DEPTH - 1} the reply continues "
        "the thread beside it.",
    )
    product_id: strawberry.ID | None = strawberry.field(
        default=None, description="DEMAND posts: a merchant offers one of their own products."
    )


@strawberry.type
class AddCommentPayload:
    errors: list[UserError]
    comment: Comment | None = None


@strawberry.input
class LikePostInput:
    post_id: strawberry.ID


@strawberry.type
class LikePostPayload:
    errors: list[UserError]
    post: Post | None = None


@strawberry.input
class UnlikePostInput:
    post_id: strawberry.ID


@strawberry.type
class UnlikePostPayload:
    errors: list[UserError]
    post: Post | None = None


@strawberry.input
class LikeCommentInput:
    comment_id: strawberry.ID


@strawberry.type
class LikeCommentPayload:
    errors: list[UserError]
    comment: Comment | None = None


@strawberry.input
class UnlikeCommentInput:
    comment_id: strawberry.ID


@strawberry.type
class UnlikeCommentPayload:
    errors: list[UserError]
    comment: Comment | None = None


@strawberry.input
class AcceptAnswerInput:
    post_id: strawberry.ID
    comment_id: strawberry.ID


@strawberry.type
class AcceptAnswerPayload:
    errors: list[UserError]
    post: Post | None = None


@strawberry.input
class FulfilDemandInput:
    post_id: strawberry.ID
    comment_id: strawberry.ID = strawberry.field(description="A reply that links a product.")


@strawberry.type
class FulfilDemandPayload:
    errors: list[UserError]
    post: Post | None = None


@strawberry.input
class JoinCircleInput:
    product_id: strawberry.ID


@strawberry.type
class JoinCirclePayload:
    errors: list[UserError]
    circle: Topic | None = None


@strawberry.input
class ReportContentInput:
    target_id: strawberry.ID = strawberry.field(description="A Post or a Comment.")
    reason: str


@strawberry.type
class ReportContentPayload:
    errors: list[UserError]
    reported: bool | None = None


@strawberry.input
class ModerateContentInput:
    target_id: strawberry.ID = strawberry.field(description="A Post or a Comment.")
    reason: str = strawberry.field(description="Kept in the audit trail.")


@strawberry.type
class ModerateContentPayload:
    errors: list[UserError]
    target: ModeratedContent | None = None


@strawberry.input
class HideContentInput(ModerateContentInput):
    pass


@strawberry.type
class HideContentPayload(ModerateContentPayload):
    pass


@strawberry.input
class RestoreContentInput(ModerateContentInput):
    pass


@strawberry.type
class RestoreContentPayload(ModerateContentPayload):
    pass


@strawberry.input
class ReleaseContentInput(ModerateContentInput):
    pass


@strawberry.type
class ReleaseContentPayload(ModerateContentPayload):
    pass


@strawberry.input
class DismissReportsInput(ModerateContentInput):
    pass


@strawberry.type
class DismissReportsPayload(ModerateContentPayload):
    pass


async def _post_of(action: Awaitable[PostModel]) -> dict[str, Any]:
    return {"post": Post.from_model(await action)}


async def _comment_of(action: Awaitable[CommentModel]) -> dict[str, Any]:
    return {"comment": Comment.from_model(await action)}


def _forget_post(info: Info, post_id: int) -> None:
    loader = info.context.loaders.post
    try:
        loader.clear(post_id)
    except KeyError:
        pass


@strawberry.type
class CommunityMutations:
    @strawberry.mutation(description="Write a post (rate-limited; sensitive words may block, mask or hold it).")
    async def create_post(self, info: Info, input: CreatePostInput) -> CreatePostPayload:
        async def action() -> dict[str, Any]:
            topics = ([input.topic] if input.topic is not None else []) + list(input.topics or [])
            new = community.NewPost(
                kind=input.kind,
                title=input.title,
                body=input.body,
                product_id=_optional_id(input.product_id, "Product", "productId"),
                order_id=_optional_id(input.order_id, "Order", "orderId"),
                rating=input.rating,
                topics=topics,
            )
            return await _post_of(community.create_post(info.context.actor, new))

        return await run_mutation(CreatePostPayload, action())

    @strawberry.mutation(description="The author changes a post's title, body or rating.")
    async def edit_post(self, info: Info, input: EditPostInput) -> EditPostPayload:
        async def action() -> dict[str, Any]:
            post_id = decode_id(input.post_id, "Post", "postId")
            _forget_post(info, post_id)
            return await _post_of(
                community.edit_post(info.context.actor, post_id, title=input.title, body=input.body, rating=input.rating)
            )

        return await run_mutation(EditPostPayload, action())

    @strawberry.mutation(description="Soft delete: by the author, or staff.")
    async def delete_post(self, info: Info, input: DeletePostInput) -> DeletePostPayload:
        async def action() -> dict[str, Any]:
            post_id = decode_id(input.post_id, "Post", "postId")
            _forget_post(info, post_id)
            return await _post_of(community.delete_post(info.context.actor, post_id))

        return await run_mutation(DeletePostPayload, action())

    @strawberry.mutation(description="Comment on a post or reply to a comment; @nickname mentions notify.")
    async def add_comment(self, info: Info, input: AddCommentInput) -> AddCommentPayload:
        async def action() -> dict[str, Any]:
            post_id = decode_id(input.post_id, "Post", "postId")
            _forget_post(info, post_id)
            return await _comment_of(
                community.add_comment(
                    info.context.actor, post_id, input.body,
                    parent_id=_optional_id(input.parent_id, "Comment", "parentId"),
                    product_id=_optional_id(input.product_id, "Product", "productId"),
                )
            )

        return await run_mutation(AddCommentPayload, action())

    @strawberry.mutation(description="Like a post (idempotent: liking again changes nothing).")
    async def like_post(self, info: Info, input: LikePostInput) -> LikePostPayload:
        async def action() -> dict[str, Any]:
            post_id = decode_id(input.post_id, "Post", "postId")
            return await _post_of(community.like_post(info.context.actor, post_id))

        return await run_mutation(LikePostPayload, action())

    @strawberry.mutation(description="Take a like back (idempotent).")
    async def unlike_post(self, info: Info, input: UnlikePostInput) -> UnlikePostPayload:
        async def action() -> dict[str, Any]:
            post_id = decode_id(input.post_id, "Post", "postId")
            return await _post_of(community.unlike_post(info.context.actor, post_id))

        return await run_mutation(UnlikePostPayload, action())

    @strawberry.mutation(description="Like a comment (idempotent).")
    async def like_comment(self, info: Info, input: LikeCommentInput) -> LikeCommentPayload:
        async def action() -> dict[str, Any]:
            comment_id = decode_id(input.comment_id, "Comment", "commentId")
            return await _comment_of(community.like_comment(info.context.actor, comment_id))

        return await run_mutation(LikeCommentPayload, action())

    @strawberry.mutation(description="Take a comment like back (idempotent).")
    async def unlike_comment(self, info: Info, input: UnlikeCommentInput) -> UnlikeCommentPayload:
        async def action() -> dict[str, Any]:
            comment_id = decode_id(input.comment_id, "Comment", "commentId")
            return await _comment_of(community.unlike_comment(info.context.actor, comment_id))

        return await run_mutation(UnlikeCommentPayload, action())

    @strawberry.mutation(description="The author of a QUESTION accepts an answer (once).")
    async def accept_answer(self, info: Info, input: AcceptAnswerInput) -> AcceptAnswerPayload:
        async def action() -> dict[str, Any]:
            post_id = decode_id(input.post_id, "Post", "postId")
            comment_id = decode_id(input.comment_id, "Comment", "commentId")
            return await _post_of(community.accept_answer(info.context.actor, post_id, comment_id))

        return await run_mutation(AcceptAnswerPayload, action())

    @strawberry.mutation(description="The author of a DEMAND chooses a merchant's reply (once).")
    async def fulfil_demand(self, info: Info, input: FulfilDemandInput) -> FulfilDemandPayload:
        async def action() -> dict[str, Any]:
            post_id = decode_id(input.post_id, "Post", "postId")
            comment_id = decode_id(input.comment_id, "Comment", "commentId")
            return await _post_of(community.fulfil_demand(info.context.actor, post_id, comment_id))

        return await run_mutation(FulfilDemandPayload, action())

    @strawberry.mutation(description="A buyer of the product joins its purchaser circle (follows its topic).")
    async def join_circle(self, info: Info, input: JoinCircleInput) -> JoinCirclePayload:
        async def action() -> dict[str, Any]:
            product_id = decode_id(input.product_id, "Product", "productId")
            return {"circle": Topic.from_model(await community.join_circle(info.context.actor, product_id))}

        return await run_mutation(JoinCirclePayload, action())

    @strawberry.mutation(description="Report a post or comment to the moderators (once per user while open).")
    async def report_content(self, info: Info, input: ReportContentInput) -> ReportContentPayload:
        async def action() -> dict[str, Any]:
            await moderation.report_content(info.context.actor, _target(input.target_id), input.reason)
            return {"reported": True}

        return await run_mutation(ReportContentPayload, action())

    @strawberry.mutation(description="Staff: hide visible or held content (audited; closes its reports).")
    async def hide_content(self, info: Info, input: HideContentInput) -> HideContentPayload:
        async def action() -> dict[str, Any]:
            item = await moderation.hide_content(info.context.actor, _target(input.target_id), input.reason)
            return {"target": _content(item)}

        return await run_mutation(HideContentPayload, action())

    @strawberry.mutation(description="Staff: make hidden content visible again (audited).")
    async def restore_content(self, info: Info, input: RestoreContentInput) -> RestoreContentPayload:
        async def action() -> dict[str, Any]:
            item = await moderation.restore_content(info.context.actor, _target(input.target_id), input.reason)
            return {"target": _content(item)}

        return await run_mutation(RestoreContentPayload, action())

    @strawberry.mutation(description="Staff: publish held content (audited); it reaches feeds as if just posted.")
    async def release_content(self, info: Info, input: ReleaseContentInput) -> ReleaseContentPayload:
        async def action() -> dict[str, Any]:
            item = await moderation.release_content(info.context.actor, _target(input.target_id), input.reason)
            return {"target": _content(item)}

        return await run_mutation(ReleaseContentPayload, action())

    @strawberry.mutation(description="Staff: close the open reports of content that stays as it is (audited).")
    async def dismiss_reports(self, info: Info, input: DismissReportsInput) -> DismissReportsPayload:
        async def action() -> dict[str, Any]:
            item = await moderation.dismiss_reports(info.context.actor, _target(input.target_id), input.reason)
            return {"target": _content(item)}

        return await run_mutation(DismissReportsPayload, action())


# -- on Product (schema.commerce.catalog) --------------------------------------------------------


async def product_posts(info: Info, product_id: int, first: int | None, after: str | None,
                        kind: PostKindValue | None) -> Connection[Post]:
    page = await community.list_posts(
        info.context.actor, community.PostFilter(product_id=product_id, kind=kind), first=first, after=after
    )
    return Connection.of(page, Post.from_model)


async def product_circle(info: Info, product_id: int) -> Topic | None:
    topic = await info.context.loaders.circle.load(product_id)
    return Topic.from_model(topic) if topic is not None else None
