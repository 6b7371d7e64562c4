"""Who sees which post, comment and product: the one rule every community module applies.

VISIBLE content is public; HELD (waiting for a moderator) and HIDDEN (hidden by one) are
seen by their author and by staff only; DELETED by staff only. Lists show VISIBLE content
plus the viewer's own HELD and HIDDEN items. Likes, comments and answers act on VISIBLE
content only (``live_post``, ``live_comment``).
"""

from __future__ import annotations

from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from models.commerce.catalog import Product
from models.community.comments import Comment
from models.community.posts import ContentStatus, Post
from resolvers.accounts.auth import Actor
from resolvers.commerce import catalog
from resolvers.errors import ErrorCode, UserFacingError


def can_see(actor: Actor, status: ContentStatus, author_id: int) -> bool:
    if status == ContentStatus.VISIBLE:
        return True
    user = actor.user
    if user is None:
        return False
    if user.is_staff:
        return True
    return user.id == author_id and status in (ContentStatus.HELD, ContentStatus.HIDDEN)


def listable(actor: Actor) -> Q:
    """What lists show the actor: VISIBLE content and the actor's own HELD/HIDDEN items."""
    shown = Q(status=ContentStatus.VISIBLE)
    if actor.user is not None:
        shown |= Q(author_id=actor.user.id, status__in=[ContentStatus.HELD, ContentStatus.HIDDEN])
    return shown


def public_posts() -> QuerySet[Post]:
    """Posts everyone sees: what feeds, fan-out and live streams are made of."""
    return Post.filter(status=ContentStatus.VISIBLE)


async def visible_post(actor: Actor, post_id: int) -> Post | None:
    post = await Post.filter(id=post_id).first()
    return post if post is not None and can_see(actor, post.status, post.author_id) else None


async def visible_comment(actor: Actor, comment_id: int) -> Comment | None:
    comment = await Comment.filter(id=comment_id).select_related("post").first()
    if comment is None or not can_see(actor, comment.status, comment.author_id):
        return None
    return comment if can_see(actor, comment.post.status, comment.post.author_id) else None


async def live_post(actor: Actor, post_id: int, field: str = "postId") -> Post:
    """A VISIBLE post (likes, comments, answers act only on those), or NOT_FOUND."""
    post = await visible_post(actor, post_id)
    if post is None or post.status == ContentStatus.DELETED:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such post.", field)
    if post.status != ContentStatus.VISIBLE:
        raise UserFacingError(ErrorCode.INVALID_STATE, "This post is not public at the moment.", field)
    return post


async def live_comment(actor: Actor, comment_id: int, field: str = "commentId") -> Comment:
    """A VISIBLE comment of a VISIBLE post, or NOT_FOUND / INVALID_STATE."""
    comment = await visible_comment(actor, comment_id)
    if comment is None:
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such comment.", field)
    if comment.status != ContentStatus.VISIBLE or comment.post.status != ContentStatus.VISIBLE:
        raise UserFacingError(ErrorCode.INVALID_STATE, "This comment is not public at the moment.", field)
    return comment


async def visible_product(actor: Actor, product_id: int, field: str = "productId") -> Product:
    """A product the actor may see (with its merchant loaded), or NOT_FOUND."""
    product = await Product.filter(id=product_id).select_related("merchant").first()
    if product is None or not catalog.product_visible(actor, product, product.merchant):
        raise UserFacingError(ErrorCode.NOT_FOUND, "No such product.", field)
    return product
