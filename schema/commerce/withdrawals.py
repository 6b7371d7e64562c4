"""Withdrawals in the graph: the Withdrawal type, the ADMIN queue, and the mutations that
request, approve, pay and reject a payout."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import relay

from models.commerce.withdrawals import Withdrawal as WithdrawalModel
from models.commerce.withdrawals import WithdrawalStatus as WithdrawalStatusValue
from resolvers.commerce import withdrawals
from schema.base import After, Connection, First, Money, UserError, decode_id, describe_values, errors_field, mutation
from schema.context import Info

WithdrawalStatus = describe_values(
    strawberry.enum(WithdrawalStatusValue, name="WithdrawalStatus", description="Where a payout request stands."),
    REQUESTED="Asked for: the amount left the shop's balance and waits in its pending withdrawals.",
    APPROVED="Approved by an ADMIN; waiting to be paid out.",
    PAID="Paid out: the payee received `amount - fee`, the platform kept `fee`.",
    REJECTED="Declined: the amount went back to the shop's balance.",
)


@strawberry.type(description="A payout request of a shop: for its owner and staff.")
class Withdrawal:
    id: strawberry.ID = strawberry.field(description="The withdrawal's global ID.")
    amount: Money = strawberry.field(description="What leaves the shop's balance, the fee included.")
    fee: Money = strawberry.field(description="What the platform keeps of it (`KAMENG_WITHDRAWAL_FEE`).")
    payout: Money = strawberry.field(description="What the payee receives: `amount - fee`.")
    status: WithdrawalStatus = strawberry.field(description="Where the request stands.")
    note: str = strawberry.field(description="Why it was rejected; empty otherwise.")
    payout_reference: str = strawberry.field(description="The payout's reference, once PAID.")
    created_at: datetime = strawberry.field(description="When it was requested.")
    paid_at: datetime | None = strawberry.field(description="When it was marked paid; null before.")

    @classmethod
    def from_model(cls, w: WithdrawalModel) -> Withdrawal:
        return cls(
            id=strawberry.ID(str(relay.GlobalID("Withdrawal", str(w.id)))),
            amount=Money(amount=w.amount, currency=w.currency), fee=Money(amount=w.fee, currency=w.currency),
            payout=Money(amount=w.amount - w.fee, currency=w.currency), status=w.status, note=w.note,
            payout_reference=w.payout_reference, created_at=w.created_at, paid_at=w.paid_at,
        )


@strawberry.type(description="Queries about withdrawals.")
class WithdrawalQueries:
    @strawberry.field(description="ADMINs: withdrawals to process (of one status, or all), oldest first.")
    async def withdrawal_queue(
        self, info: Info,
        status: Annotated[WithdrawalStatus | None, strawberry.argument(description="Only this status.")] = None,
        first: First = None, after: After = None,
    ) -> Connection[Withdrawal]:
        page = await withdrawals.queue(info.context.actor, status, first=first, after=after)
        return Connection.of(page, Withdrawal.from_model)


@strawberry.input(description="A payout request from a shop's available balance.")
class RequestWithdrawalInput:
    merchant_id: strawberry.ID = strawberry.field(description="The shop's global ID.")
    amount: str = strawberry.field(description='A decimal string, the fee included, e.g. "300.00".')


@strawberry.input(description="A withdrawal to approve.")
class ApproveWithdrawalInput:
    withdrawal_id: strawberry.ID = strawberry.field(description="The withdrawal's global ID.")


@strawberry.input(description="A withdrawal whose money has been sent.")
class MarkWithdrawalPaidInput:
    withdrawal_id: strawberry.ID = strawberry.field(description="The withdrawal's global ID.")
    payout_reference: str = strawberry.field(description="The bank or provider reference of the payout.")


@strawberry.input(description="A withdrawal to decline.")
class RejectWithdrawalInput:
    withdrawal_id: strawberry.ID = strawberry.field(description="The withdrawal's global ID.")
    note: str = strawberry.field(description="Why, for the shop's owner (3 to 300 characters).")


@strawberry.type(description="Result of the withdrawal mutations.")
class WithdrawalPayload:
    errors: list[UserError] = errors_field()
    withdrawal: Withdrawal | None = strawberry.field(default=None, description="The withdrawal as it is now; null on "
                                                                                 "failure.")


def _key(raw: strawberry.ID) -> int:
    return decode_id(raw, "Withdrawal", "withdrawalId")


@strawberry.type(description="Mutations of withdrawals.")
class WithdrawalMutations:
    @mutation(description="A shop's owner asks for a payout from the available balance (escrow and the deposit are "
                          "not available). At least `KAMENG_WITHDRAWAL_MINIMUM`; never more than the balance, "
                          "however many requests arrive at once.")
    async def request_withdrawal(self, info: Info, input: RequestWithdrawalInput) -> WithdrawalPayload:
        merchant_id = decode_id(input.merchant_id, "Merchant", "merchantId")
        found = await withdrawals.request(info.context.actor, merchant_id, input.amount)
        return WithdrawalPayload(withdrawal=Withdrawal.from_model(found))

    @mutation(description="ADMINs: approve a REQUESTED withdrawal.")
    async def approve_withdrawal(self, info: Info, input: ApproveWithdrawalInput) -> WithdrawalPayload:
        found = await withdrawals.approve(info.context.actor, _key(input.withdrawal_id))
        return WithdrawalPayload(withdrawal=Withdrawal.from_model(found))

    @mutation(description="ADMINs: an APPROVED withdrawal was paid out; it leaves the books.")
    async def mark_withdrawal_paid(self, info: Info, input: MarkWithdrawalPaidInput) -> WithdrawalPayload:
        found = await withdrawals.mark_paid(info.context.actor, _key(input.withdrawal_id), input.payout_reference)
        return WithdrawalPayload(withdrawal=Withdrawal.from_model(found))

    @mutation(description="ADMINs: decline a REQUESTED or APPROVED withdrawal; the amount returns to the shop.")
    async def reject_withdrawal(self, info: Info, input: RejectWithdrawalInput) -> WithdrawalPayload:
        found = await withdrawals.reject(info.context.actor, _key(input.withdrawal_id), input.note)
        return WithdrawalPayload(withdrawal=Withdrawal.from_model(found))
