"""Renewal offers in the graph: the one-click renewal of a delivered item (the reminders
themselves are notifications, sent by a sweep: resolvers/repurchase/reminders.py)."""

from __future__ import annotations

import strawberry

from resolvers.repurchase import reminders
from schema.base import UserError, decode_id, errors_field, mutation
from schema.commerce.orders import Order
from schema.context import Info


@strawberry.input(description="The delivered item to renew.")
class RenewItemInput:
    order_id: strawberry.ID = strawberry.field(description="The delivered order's global ID.")


@strawberry.type(description="Result of `renewItem`.")
class RenewItemPayload:
    errors: list[UserError] = errors_field()
    order: Order | None = strawberry.field(default=None, description="The renewal's order, paid from the wallet.")


@strawberry.type(description="Mutations of renewal offers.")
class ReminderMutations:
    @mutation(description="One click: the same product and quantity again, paid from the wallet; its validity runs on "
                          "from the item's. Clicking again returns the same order.")
    async def renew_item(self, info: Info, input: RenewItemInput) -> RenewItemPayload:
        order = await reminders.renew_item(info.context.actor, decode_id(input.order_id, "Order", "orderId"))
        return RenewItemPayload(order=Order.from_model(order))
