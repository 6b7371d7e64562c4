"""Self-service claims in the graph: reportOrderProblem (the buyer), contestClaim (the shop),
decideClaim and claimsToDecide (staff), orderClaims (the buyer, the shop, staff)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry
from strawberry import relay

from models.trust.claims import Claim as ClaimModel
from models.trust.claims import ClaimOutcome as ClaimOutcomeValue
from models.trust.claims import ClaimReason as ClaimReasonValue
from models.trust.claims import ClaimStatus as ClaimStatusValue
from resolvers.trust import claims
from resolvers.trust.claims import Decision
from schema.base import Money, UserError, decode_id, describe_values, errors_field, in_graph, mutation
from schema.context import Info

ClaimReason = describe_values(
    strawberry.enum(ClaimReasonValue, name="ClaimReason", description="What the buyer reports."),
    KEY_INVALID="A delivered card key does not work (CARD_KEY orders).",
    NOT_RECEIVED="A top-up or manual delivery has not arrived past its promise (DIRECT_TOPUP and MANUAL orders).",
)
ClaimStatus = describe_values(
    strawberry.enum(ClaimStatusValue, name="ClaimStatus", description="Where a claim stands."),
    PENDING_REVIEW="Outside the self-service rules: staff decide.",
    RESOLVED="Replaced or refunded.",
    REJECTED="Staff found nothing owed.",
    CONTESTED="The shop contests the automatic outcome: staff decide.",
    REVERSED="Staff reversed the outcome: the shop was paid back.",
)
ClaimOutcome = describe_values(
    strawberry.enum(ClaimOutcomeValue, name="ClaimOutcome", description="What the buyer was given."),
    NONE="Nothing (yet).",
    REPLACEMENT="A fresh key, delivered in the order's `cardKeys`.",
    REFUND="Money back to the buyer's wallet.",
)
ClaimDecision = describe_values(
    strawberry.enum(Decision, name="ClaimDecision", description="Staff's decision on a claim."),
    UPHOLD="A contested outcome stands.",
    REVERSE="A contested outcome is undone: the shop gets back what it cost it (one ledger posting).",
    REFUND="A claim in review: refund the buyer.",
    REPLACE="A KEY_INVALID claim in review: a fresh key if in stock, else a refund.",
    REJECT="A claim in review: nothing is owed.",
)


@in_graph  # notification payloads build it by name (schema/accounts/notification_payloads_loop.py)
@strawberry.type(description="A buyer's report of a problem with an order, and how it was resolved.")
class Claim:
    id: strawberry.ID = strawberry.field(description="The claim's global ID (\"Claim\").")
    order_id: strawberry.ID = strawberry.field(description="The order's global ID.")
    reason: ClaimReason = strawberry.field(description="What was reported.")
    status: ClaimStatus = strawberry.field(description="Where the claim stands.")
    outcome: ClaimOutcome = strawberry.field(description="What the buyer was given.")
    automatic: bool = strawberry.field(description="True when a self-service rule decided it (the shop may contest).")
    rule: str = strawberry.field(
        description="The rule that resolved it (`key-invalid`, `not-received`), or why none did "
                    "(`late-report`, `claim-rate`, `marked-delivered`, `shop-cannot-pay`)."
    )
    amount: Money = strawberry.field(description="The refund, or the price of the replaced key.")
    paid_from: str = strawberry.field(
        description="Where a refund came from: `escrow`, or the shop's `merchant:` balance and `deposit:` accounts."
    )
    message: str = strawberry.field(description="The buyer's words; may be empty.")
    contest_reason: str = strawberry.field(description="The shop's reason to contest; empty if not contested.")
    decision_note: str = strawberry.field(description="Staff's note on their decision; empty if none.")
    created_at: datetime = strawberry.field(description="When it was filed.")
    resolved_at: datetime | None = strawberry.field(description="When the buyer was replaced or refunded.")
    contested_at: datetime | None = strawberry.field(description="When the shop contested it.")

    @classmethod
    def from_model(cls, c: ClaimModel) -> Claim:
        return cls(
            id=strawberry.ID(str(relay.GlobalID("Claim", str(c.id)))),
            order_id=strawberry.ID(str(relay.GlobalID("Order", str(c.order_id)))),
            reason=c.reason, status=c.status, outcome=c.outcome, automatic=c.automatic, rule=c.rule,
            amount=Money(amount=c.amount, currency="CNY"), paid_from=c.paid_from, message=c.message,
            contest_reason=c.contest_reason, decision_note=c.decision_note, created_at=c.created_at,
            resolved_at=c.resolved_at, contested_at=c.contested_at,
        )


@strawberry.input(description="A problem with one of your orders.")
class ReportOrderProblemInput:
    order_id: strawberry.ID = strawberry.field(description="The order's global ID.")
    reason: ClaimReason = strawberry.field(description="What is wrong.")
    card_key_id: strawberry.ID | None = strawberry.field(
        default=None, description="KEY_INVALID: the key's global ID (from `cardKeys`); may be left out "
                                  "when the order has one key."
    )
    message: str | None = strawberry.field(default=None, description="Anything to add (at most 500 characters).")


@strawberry.type(description="Result of `reportOrderProblem`.")
class ReportOrderProblemPayload:
    errors: list[UserError] = errors_field()
    claim: Claim | None = strawberry.field(default=None, description="The claim; null on failure.")


@strawberry.input(description="A shop's objection to an automatic claim outcome.")
class ContestClaimInput:
    claim_id: strawberry.ID = strawberry.field(description="The claim's global ID.")
    reason: str = strawberry.field(description="Why the outcome is wrong (3 to 500 characters).")


@strawberry.type(description="Result of `contestClaim`.")
class ContestClaimPayload:
    errors: list[UserError] = errors_field()
    claim: Claim | None = strawberry.field(default=None, description="The claim, CONTESTED; null on failure.")


@strawberry.input(description="Staff's decision on a contested claim or one in review.")
class DecideClaimInput:
    claim_id: strawberry.ID = strawberry.field(description="The claim's global ID.")
    decision: ClaimDecision = strawberry.field(
        description="UPHOLD or REVERSE a CONTESTED claim; REFUND, REPLACE or REJECT one PENDING_REVIEW."
    )
    note: str = strawberry.field(description="Why (3 to 300 characters), shown to the buyer.")


@strawberry.type(description="Result of `decideClaim`.")
class DecideClaimPayload:
    errors: list[UserError] = errors_field()
    claim: Claim | None = strawberry.field(default=None, description="The claim as decided; null on failure.")


@strawberry.type(description="Self-service claims: buyers report, shops contest, staff decide.")
class ClaimMutations:
    @mutation(description="The buyer reports a problem with their order. Within the rules it is resolved at once "
                          "(a replacement key, or a refund); otherwise it waits for staff. Reporting the same key or "
                          "problem again answers the same claim.")
    async def report_order_problem(self, info: Info, input: ReportOrderProblemInput) -> ReportOrderProblemPayload:
        order_id = decode_id(input.order_id, "Order", "orderId")
        key_id = decode_id(input.card_key_id, "CardKey", "cardKeyId") if input.card_key_id is not None else None
        claim = await claims.self_serve(info.context.actor, order_id, ClaimReasonValue(input.reason),
                                        card_key_id=key_id, message=input.message or "")
        return ReportOrderProblemPayload(claim=Claim.from_model(claim))

    @mutation(description="The shop's owner contests an automatic claim outcome, once, within the contest window.")
    async def contest_claim(self, info: Info, input: ContestClaimInput) -> ContestClaimPayload:
        claim = await claims.contest(info.context.actor, decode_id(input.claim_id, "Claim", "claimId"), input.reason)
        return ContestClaimPayload(claim=Claim.from_model(claim))

    @mutation(description="An ADMIN decides a contested claim or one in review; a reversal or refund is one ledger "
                          "posting, made once.")
    async def decide_claim(self, info: Info, input: DecideClaimInput) -> DecideClaimPayload:
        claim = await claims.decide(info.context.actor, decode_id(input.claim_id, "Claim", "claimId"),
                                    Decision(input.decision), input.note)
        return DecideClaimPayload(claim=Claim.from_model(claim))


@strawberry.type(description="Reading claims.")
class ClaimQueries:
    @strawberry.field(description="An order's claims, oldest first: for its buyer, its shop's owner and staff; "
                                  "empty for anyone else.")
    async def order_claims(
        self, info: Info, order_id: Annotated[strawberry.ID, strawberry.argument(description="The order's global ID.")]
    ) -> list[Claim]:
        rows = await claims.claims_of_order(info.context.actor, decode_id(order_id, "Order", "orderId"))
        return [Claim.from_model(c) for c in rows]

    @strawberry.field(description="ADMIN only: claims in review and contested ones, oldest first.")
    async def claims_to_decide(
        self, info: Info,
        first: Annotated[int, strawberry.argument(description="How many (1 to 100).")] = 50,
    ) -> list[Claim]:
        return [Claim.from_model(c) for c in await claims.claims_to_decide(info.context.actor, first)]
