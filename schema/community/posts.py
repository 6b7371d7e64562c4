"""Posts in the graph: the ``posts`` and ``post`` queries, and writing, editing and deleting one.

Thin: GraphQL values in, resolvers.community.posts called, types (schema.community.types) out.
"""

from __future__ import annotations

from typing import Annotated

import strawberry

from resolvers.community import posts
from schema.base import After, Before, Connection, First, Last, UserError, decode_id, errors_field, mutation
from schema.community.types import Post, PostKind, forget_post
from schema.context import Info


def optional_id(value: strawberry.ID | None, expected: str, field: str) -> int | None:
    return decode_id(value, expected, field) if value is not None else None


# -- queries ----------------------------------------------------------------------------


@strawberry.input(name="PostFilter", description="Narrows a post list; every given field must match.")
class PostFilterInput:
    kind: PostKind | None = strawberry.field(default=None, description="Only posts of this kind.")
    author_id: strawberry.ID | None = strawberry.field(default=None, description="Only this user's posts.")
    product_id: strawberry.ID | None = strawberry.field(default=None, description="Only posts about this product.")
    topic: str | None = strawberry.field(default=None, description="Only posts in this topic (its slug).")

    def to_filter(self) -> posts.PostFilter:
        return posts.PostFilter(
            kind=self.kind,
            author_id=decode_id(self.author_id, "User", "filter.authorId") if self.author_id else None,
            product_id=decode_id(self.product_id, "Product", "filter.productId") if self.product_id else None,
            topic=self.topic,
        )


@strawberry.type(description="Queries about posts.")
class PostQueries:
    @strawberry.field(description="Posts, newest first: visible ones, and the viewer's own held or hidden ones.")
    async def posts(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        filter: Annotated[PostFilterInput | None, strawberry.argument(description="Narrow the list.")] = None,
    ) -> Connection[Post]:
        listing = filter.to_filter() if filter is not None else posts.PostFilter()
        page = await posts.list_posts(
            info.context.actor, listing, first=first, after=after, last=last, before=before
        )
        return Connection.of(page, Post.from_model)

    @strawberry.field(description="A post; null if it does not exist or the viewer may not see it.")
    async def post(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The post's global ID.")]
    ) -> Post | None:
        try:
            post_id = decode_id(id, "Post", "id")
        except Exception:
            return None
        (post,) = await Post.resolve_nodes(info=info, node_ids=[str(post_id)])
        return post


# -- mutations --------------------------------------------------------------------------


@strawberry.input(description="A new post.")
class CreatePostInput:
    kind: PostKind = strawberry.field(description="What sort of post.")
    title: str = strawberry.field(description="Plain text title.")
    body: str = strawberry.field(description="Markdown (raw HTML is shown as text).")
    product_id: strawberry.ID | None = strawberry.field(default=None, description="REVIEW: required. Others: a product card.")
    order_id: strawberry.ID | None = strawberry.field(default=None, description="SHOWCASE: your delivered order.")
    rating: int | None = strawberry.field(default=None, description="REVIEW: 1 to 5.")
    topic: str | None = strawberry.field(default=None, description="A topic slug (created on first use).")
    topics: list[str] | None = strawberry.field(default=None, description="More topic slugs (at most 5 in all).")


@strawberry.type(description="Result of `createPost`.")
class CreatePostPayload:
    errors: list[UserError] = errors_field()
    post: Post | None = strawberry.field(
        default=None, description="The post: VISIBLE, or HELD for a moderator. Null on failure."
    )


@strawberry.input(description="Changes to a post; fields left out keep their value.")
class EditPostInput:
    post_id: strawberry.ID = strawberry.field(description="The post's global ID.")
    title: str | None = strawberry.field(default=None, description="New title.")
    body: str | None = strawberry.field(default=None, description="New Markdown body.")
    rating: int | None = strawberry.field(default=None, description="REVIEW: new rating, 1 to 5.")


@strawberry.type(description="Result of `editPost`.")
class EditPostPayload:
    errors: list[UserError] = errors_field()
    post: Post | None = strawberry.field(default=None, description="The post as it is now; null on failure.")


@strawberry.input(description="The post to delete.")
class DeletePostInput:
    post_id: strawberry.ID = strawberry.field(description="The post's global ID.")


@strawberry.type(description="Result of `deletePost`.")
class DeletePostPayload:
    errors: list[UserError] = errors_field()
    post: Post | None = strawberry.field(default=None, description="The post, DELETED; null on failure.")


@strawberry.type(description="Mutations of posts.")
class PostMutations:
    @mutation(description="Write a post (rate-limited; sensitive words may block, mask or hold it).")
    async def create_post(self, info: Info, input: CreatePostInput) -> CreatePostPayload:
        new = posts.NewPost(
            kind=input.kind,
            title=input.title,
            body=input.body,
            product_id=optional_id(input.product_id, "Product", "productId"),
            order_id=optional_id(input.order_id, "Order", "orderId"),
            rating=input.rating,
            topics=([input.topic] if input.topic is not None else []) + list(input.topics or []),
        )
        return CreatePostPayload(post=Post.from_model(await posts.create_post(info.context.actor, new)))

    @mutation(description="The author changes a post's title, body or rating.")
    async def edit_post(self, info: Info, input: EditPostInput) -> EditPostPayload:
        post_id = decode_id(input.post_id, "Post", "postId")
        forget_post(info, post_id)
        post = await posts.edit_post(info.context.actor, post_id, title=input.title, body=input.body, rating=input.rating)
        return EditPostPayload(post=Post.from_model(post))

    @mutation(description="Soft delete: by the author, or staff.")
    async def delete_post(self, info: Info, input: DeletePostInput) -> DeletePostPayload:
        post_id = decode_id(input.post_id, "Post", "postId")
        forget_post(info, post_id)
        return DeletePostPayload(post=Post.from_model(await posts.delete_post(info.context.actor, post_id)))

