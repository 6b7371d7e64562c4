"""Shops and categories in the graph: the Merchant and Category types, and the mutations
that open a shop, suspend it, hold its deposit, and add a category."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from strawberry import relay

from models.commerce.merchants import Category as CategoryModel
from models.commerce.merchants import Merchant as MerchantModel
from models.commerce.merchants import MerchantStatus as MerchantStatusValue
from resolvers.commerce import catalog, ledger, merchants, sales, suppliers, withdrawals
from resolvers.commerce.catalog import ProductSort as ProductSortValue
from schema.accounts.users import User
from schema.base import (
    After,
    Before,
    Connection,
    First,
    Last,
    Money,
    UserError,
    decode_id,
    describe_values,
    errors_field,
    graph_type,
    in_graph,
    mutation,
    node_keys,
)
from schema.commerce.catalog import Product, ProductSort, product_page
from schema.commerce.promises import DeliveryStats
from schema.commerce.suppliers import SupplierConfig
from schema.commerce.withdrawals import Withdrawal
from schema.context import Info
from schema.trust.profile import TrustProfile

if TYPE_CHECKING:
    from schema.commerce.orders import Order
    from schema.commerce.sales import MerchantOrderFilter, SalesStats

MerchantStatus = describe_values(
    strawberry.enum(MerchantStatusValue, name="MerchantStatus", description="Whether a shop may trade."),
    ACTIVE="Open: its products can be listed and ordered.",
    SUSPENDED="Closed by staff: its products are unlisted and cannot be ordered.",
    PENDING_DEPOSIT="Approved through onboarding, its deposit not yet held: unlisted until its owner pays it.",
)

CURRENCY = "CNY"


# -- types ------------------------------------------------------------------------------


@in_graph
@strawberry.type(description="A product category; categories form a tree. Public.")
class Category(relay.Node):
    id: relay.NodeID[int]
    name: str = strawberry.field(description="Display name.")
    slug: str = strawberry.field(description='Stable URL key, e.g. "game-cards"; unique.')
    _model: strawberry.Private[CategoryModel]

    @strawberry.field(description="The enclosing category; null for a top-level one.")
    async def parent(self, info: Info) -> Category | None:
        if self._model.parent_id is None:
            return None
        parent = await info.context.loaders.category.load(self._model.parent_id)
        return Category.from_model(parent) if parent is not None else None

    @classmethod
    def from_model(cls, category: CategoryModel) -> Category:
        return cls(id=category.id, name=category.name, slug=category.slug, _model=category)

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Category | None]:
        ids = node_keys(node_ids)
        found = await info.context.loaders.category.load_many([i for i in ids if i is not None])
        by_id = {c.id: c for c in found if c is not None}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]


@in_graph
@strawberry.type(description="A shop, run by one MERCHANT user. Public, except its earnings `balance`.")
class Merchant(relay.Node):
    id: relay.NodeID[int]
    name: str = strawberry.field(description="The shop's display name.")
    description: str = strawberry.field(description="The shop's own words about itself, plain text; may be empty.")
    status: MerchantStatus = strawberry.field(description="Whether the shop may trade.")
    created_at: datetime = strawberry.field(description="When the shop was opened.")
    _model: strawberry.Private[MerchantModel]

    @strawberry.field(description="The user who runs the shop; null if that account was deactivated.")
    async def owner(self, info: Info) -> User | None:
        user = await info.context.loaders.user.load(self._model.owner_id)
        return User.from_model(user) if user is not None and user.is_active else None

    @strawberry.field(description="The security deposit (保证金) the platform holds for this shop.")
    async def deposit(self, info: Info) -> Money:
        amount = await info.context.loaders.account_balance.load(ledger.merchant_deposit(self.id))
        return Money(amount=amount, currency=CURRENCY)

    @strawberry.field(description="The shop's earnings balance: for its owner and staff; null otherwise.")
    async def balance(self, info: Info) -> Money | None:
        if not merchants.can_manage(info.context.actor, self._model):
            return None
        amount = await info.context.loaders.account_balance.load(ledger.merchant_balance(self.id))
        return Money(amount=amount, currency=CURRENCY)

    @strawberry.field(
        description="The shop's delivery promise kept, measured over the last 30 days (public): median and 95th "
                    "percentile of payment-to-delivery time, and the share delivered on time."
    )
    async def delivery_stats(self, info: Info) -> DeliveryStats:
        return DeliveryStats.of(await info.context.loaders.delivery_stats.load(self.id))

    @strawberry.field(
        description="The shop's trust profile, public and computed live: delivery times, ticket response and "
                    "resolution times, dispute and refund rates, deposit held, verified review rating."
    )
    async def trust_profile(self, info: Info) -> TrustProfile:
        loaders = info.context.loaders
        numbers = await loaders.trust_numbers.load(self.id)
        delivery = DeliveryStats.of(await loaders.delivery_stats.load(self.id))
        deposit = await loaders.account_balance.load(ledger.merchant_deposit(self.id))
        return TrustProfile.of(numbers, delivery, Money(amount=deposit, currency=CURRENCY))

    @strawberry.field(description="The shop's products (hidden ones too, for its owner and staff).")
    async def products(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        sort: Annotated[ProductSort | None, strawberry.argument(description="The order of the list.")] = (
            ProductSortValue.NEWEST
        ),
    ) -> Connection[Product]:
        listing = catalog.ProductFilter(merchant_id=self.id, include_hidden=True)
        return await product_page(info, listing, sort, first=first, after=after, last=last, before=before)

    # -- the back office (owner and staff; null for others) -----------------------------------

    @strawberry.field(description="The shop's orders for its owner and staff (null for others): MANUAL orders "
                                  "waiting for delivery first, the soonest deadline first, then the rest newest first.")
    async def orders(
        self,
        info: Info,
        filter: Annotated[
            Annotated[MerchantOrderFilter, strawberry.lazy("schema.commerce.sales")] | None,
            strawberry.argument(description="Which orders; default: all."),
        ] = None,
        first: First = None,
        after: After = None,
    ) -> Connection[Annotated[Order, strawberry.lazy("schema.commerce.orders")]] | None:
        spec = sales.OrderFilter()
        if filter is not None:
            product_id = decode_id(filter.product_id, "Product", "productId") if filter.product_id else None
            spec = sales.OrderFilter(status=filter.status, product_id=product_id, since=filter.from_, until=filter.to,
                                     delivery_kind=filter.delivery_kind)
        page = await sales.merchant_orders(info.context.actor, self._model, spec, first=first, after=after)
        return Connection.of(page, graph_type("Order").from_model) if page is not None else None

    @strawberry.field(description="Sales statistics over a period (default: the last 30 days, at most 366), per "
                                  "day and per product: for the owner and staff; null for others.")
    async def sales_stats(
        self,
        info: Info,
        since: Annotated[datetime | None, strawberry.argument(description="Start (inclusive).")] = None,
        until: Annotated[datetime | None, strawberry.argument(description="End (exclusive); default now.")] = None,
    ) -> Annotated[SalesStats, strawberry.lazy("schema.commerce.sales")] | None:
        stats = await sales.sales_stats(info.context.actor, self._model, since, until)
        return graph_type("SalesStats").of(stats) if stats is not None else None

    @strawberry.field(description="The shop's withdrawals, newest first: for the owner and staff; null for others.")
    async def withdrawals(self, info: Info, first: First = None, after: After = None) -> Connection[Withdrawal] | None:
        page = await withdrawals.of_merchant(info.context.actor, self._model, first=first, after=after)
        return Connection.of(page, Withdrawal.from_model) if page is not None else None

    @strawberry.field(description="Money requested for payout and not yet paid or rejected: owner and staff only.")
    async def pending_withdrawals(self, info: Info) -> Money | None:
        if not merchants.can_manage(info.context.actor, self._model):
            return None
        return Money(amount=await withdrawals.pending_total(self.id), currency=CURRENCY)

    @strawberry.field(description="The shop's top-up supplier configurations (secrets never shown): owner and staff.")
    async def suppliers(self, info: Info) -> list[SupplierConfig] | None:
        found = await suppliers.configs_of(info.context.actor, self._model)
        return [SupplierConfig.from_model(c) for c in found] if found is not None else None

    @classmethod
    def from_model(cls, merchant: MerchantModel) -> Merchant:
        return cls(
            id=merchant.id,
            name=merchant.name,
            description=merchant.description,
            status=merchant.status,
            created_at=merchant.created_at,
            _model=merchant,
        )

    @classmethod
    async def resolve_nodes(
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[Merchant | None]:
        ids = node_keys(node_ids)
        found = await info.context.loaders.merchant.load_many([i for i in ids if i is not None])
        by_id = {m.id: m for m in found if m is not None}
        return [cls.from_model(by_id[i]) if i in by_id else None for i in ids]


# -- queries ----------------------------------------------------------------------------


@strawberry.type(description="Queries about shops and categories.")
class MerchantQueries:
    @strawberry.field(description="A shop by its ID (suspended ones too); null if there is none.")
    async def merchant(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="The shop's global ID.")]
    ) -> Merchant | None:
        merchant = await info.context.loaders.merchant.load(decode_id(id, "Merchant", "id"))
        return Merchant.from_model(merchant) if merchant is not None else None

    @strawberry.field(description="Every category, by name.")
    async def categories(self, info: Info) -> list[Category]:
        found = await merchants.list_categories()
        info.context.loaders.category.prime_many({c.id: c for c in found})
        return [Category.from_model(c) for c in found]


# -- mutations --------------------------------------------------------------------------


@strawberry.input(description="A new shop.")
class CreateMerchantInput:
    name: str = strawberry.field(description="The shop's display name.")
    description: str = strawberry.field(default="", description="About the shop, plain text.")


@strawberry.type(description="Result of `createMerchant`.")
class CreateMerchantPayload:
    errors: list[UserError] = errors_field()
    merchant: Merchant | None = strawberry.field(default=None, description="The new shop; null on failure.")


@strawberry.input(description="Suspend or reinstate a shop.")
class SetMerchantStatusInput:
    merchant_id: strawberry.ID = strawberry.field(description="The shop's global ID.")
    status: MerchantStatus = strawberry.field(description="The status to set.")


@strawberry.type(description="Result of `setMerchantStatus`.")
class SetMerchantStatusPayload:
    errors: list[UserError] = errors_field()
    merchant: Merchant | None = strawberry.field(default=None, description="The shop as it is now; null on failure.")


@strawberry.input(description="Money to move from the shop owner's wallet into the shop's deposit.")
class HoldMerchantDepositInput:
    merchant_id: strawberry.ID = strawberry.field(description="The shop's global ID.")
    amount: str = strawberry.field(description='A decimal string, e.g. "500.00".')
    idempotency_key: str | None = strawberry.field(
        default=None, description="Retrying with the same key holds the money once (8 to 80 characters)."
    )


@strawberry.type(description="Result of `holdMerchantDeposit`.")
class HoldMerchantDepositPayload:
    errors: list[UserError] = errors_field()
    merchant: Merchant | None = strawberry.field(
        default=None, description="The shop, with its new `deposit`; null on failure."
    )


@strawberry.input(description="A new category.")
class CreateCategoryInput:
    name: str = strawberry.field(description="Display name.")
    slug: str = strawberry.field(description='Lower-case letters and digits joined by hyphens, e.g. "game-cards".')
    parent_id: strawberry.ID | None = strawberry.field(
        default=None, description="The enclosing category's global ID; null for a top-level category."
    )


@strawberry.type(description="Result of `createCategory`.")
class CreateCategoryPayload:
    errors: list[UserError] = errors_field()
    category: Category | None = strawberry.field(default=None, description="The new category; null on failure.")


@strawberry.type(description="Mutations of shops and categories.")
class MerchantMutations:
    @mutation(description="A MERCHANT opens their shop (one each; an ADMIN may open several).")
    async def create_merchant(self, info: Info, input: CreateMerchantInput) -> CreateMerchantPayload:
        merchant = await merchants.create_merchant(info.context.actor, name=input.name, description=input.description)
        return CreateMerchantPayload(merchant=Merchant.from_model(merchant))

    @mutation(description="Moderators and admins: suspend or reinstate a shop.")
    async def set_merchant_status(self, info: Info, input: SetMerchantStatusInput) -> SetMerchantStatusPayload:
        merchant_id = decode_id(input.merchant_id, "Merchant", "merchantId")
        merchant = await merchants.set_merchant_status(info.context.actor, merchant_id, input.status)
        return SetMerchantStatusPayload(merchant=Merchant.from_model(merchant))

    @mutation(description="Admins: move a security deposit from the owner's wallet to the shop's deposit.")
    async def hold_merchant_deposit(self, info: Info, input: HoldMerchantDepositInput) -> HoldMerchantDepositPayload:
        merchant_id = decode_id(input.merchant_id, "Merchant", "merchantId")
        merchant = await merchants.hold_deposit(
            info.context.actor, merchant_id, input.amount, idempotency_key=input.idempotency_key
        )
        return HoldMerchantDepositPayload(merchant=Merchant.from_model(merchant))

    @mutation(description="Admins: add a category.")
    async def create_category(self, info: Info, input: CreateCategoryInput) -> CreateCategoryPayload:
        parent_id = decode_id(input.parent_id, "Category", "parentId") if input.parent_id is not None else None
        category = await merchants.create_category(info.context.actor, name=input.name, slug=input.slug, parent_id=parent_id)
        return CreateCategoryPayload(category=Category.from_model(category))
