"""Self-service onboarding in the graph: apply to open a shop, the ADMIN review queue, and
the owner paying a PENDING_DEPOSIT shop's deposit."""

from __future__ import annotations

from datetime import datetime
import strawberry
from strawberry import relay

from models.commerce.onboarding import ApplicationStatus as ApplicationStatusValue
from models.commerce.onboarding import MerchantApplication as ApplicationModel
from resolvers.commerce import onboarding
from schema.base import After, Connection, First, UserError, decode_id, describe_values, errors_field, mutation
from schema.commerce.merchants import Merchant
from schema.context import Info

MerchantApplicationStatus = describe_values(
    strawberry.enum(ApplicationStatusValue, name="MerchantApplicationStatus",
                    description="Where an application to open a shop stands."),
    PENDING="Waiting for an ADMIN's review.",
    APPROVED="Approved: the shop exists (`merchantId`).",
    REJECTED="Declined; `reviewNote` says why. The user may apply again.",
)


@strawberry.type(description="An application to open a shop: for the applicant and ADMINs.")
class MerchantApplication:
    id: strawberry.ID = strawberry.field(description="The application's global ID.")
    shop_name: str = strawberry.field(description="The shop name asked for.")
    description: str = strawberry.field(description="What the shop will sell, in the applicant's words.")
    contact: str = strawberry.field(description="How staff can reach the applicant (phone, e-mail, IM).")
    status: MerchantApplicationStatus = strawberry.field(description="Where the application stands.")
    review_note: str = strawberry.field(description="The reviewer's note; empty until reviewed.")
    merchant_id: strawberry.ID | None = strawberry.field(description="The shop made on approval; null before.")
    created_at: datetime = strawberry.field(description="When the user applied.")
    reviewed_at: datetime | None = strawberry.field(description="When it was reviewed; null while PENDING.")

    @classmethod
    def from_model(cls, a: ApplicationModel) -> MerchantApplication:
        return cls(
            id=strawberry.ID(str(relay.GlobalID("MerchantApplication", str(a.id)))), shop_name=a.shop_name,
            description=a.description, contact=a.contact, status=a.status, review_note=a.review_note,
            merchant_id=strawberry.ID(str(relay.GlobalID("Merchant", str(a.merchant_id)))) if a.merchant_id else None,
            created_at=a.created_at, reviewed_at=a.reviewed_at,
        )


@strawberry.type(description="Queries about applications to open a shop.")
class OnboardingQueries:
    @strawberry.field(description="The signed-in user's own applications, newest first (at most 20).")
    async def my_merchant_applications(self, info: Info) -> list[MerchantApplication]:
        return [MerchantApplication.from_model(a) for a in await onboarding.my_applications(info.context.actor)]

    @strawberry.field(description="ADMINs: applications waiting for review, oldest first.")
    async def merchant_applications(self, info: Info, first: First = None,
                                    after: After = None) -> Connection[MerchantApplication]:
        page = await onboarding.pending_applications(info.context.actor, first=first, after=after)
        return Connection.of(page, MerchantApplication.from_model)


@strawberry.input(description="An application to open a shop.")
class ApplyForMerchantInput:
    shop_name: str = strawberry.field(description="The shop's display name (2 to 80 characters, unique).")
    contact: str = strawberry.field(description="How staff can reach you (3 to 200 characters).")
    description: str = strawberry.field(default="", description="What you will sell, plain text.")


@strawberry.type(description="Result of `applyForMerchant`.")
class ApplyForMerchantPayload:
    errors: list[UserError] = errors_field()
    application: MerchantApplication | None = strawberry.field(default=None, description="The application; null on failure.")


@strawberry.input(description="An ADMIN's decision on an application.")
class ReviewMerchantApplicationInput:
    application_id: strawberry.ID = strawberry.field(description="The application's global ID.")
    note: str = strawberry.field(default="", description="For the applicant; required (3+ characters) to reject.")


@strawberry.type(description="Result of `approveMerchantApplication` and `rejectMerchantApplication`.")
class ReviewMerchantApplicationPayload:
    errors: list[UserError] = errors_field()
    application: MerchantApplication | None = strawberry.field(
        default=None, description="The application as decided; null on failure.")


@strawberry.input(description="Pay a PENDING_DEPOSIT shop's deposit from the owner's wallet.")
class PayMerchantDepositInput:
    merchant_id: strawberry.ID = strawberry.field(description="The shop's global ID.")


@strawberry.type(description="Result of `payMerchantDeposit`.")
class PayMerchantDepositPayload:
    errors: list[UserError] = errors_field()
    merchant: Merchant | None = strawberry.field(
        default=None, description="The shop, now ACTIVE; null on failure.")


@strawberry.type(description="Mutations of applications to open a shop.")
class OnboardingMutations:
    @mutation(description="A signed-in user applies to open a shop (one pending application at a time).")
    async def apply_for_merchant(self, info: Info, input: ApplyForMerchantInput) -> ApplyForMerchantPayload:
        application = await onboarding.apply(info.context.actor, shop_name=input.shop_name,
                                             description=input.description, contact=input.contact)
        return ApplyForMerchantPayload(application=MerchantApplication.from_model(application))

    @mutation(description="ADMINs: approve an application. The shop is created, the applicant becomes a MERCHANT "
                          "and the deposit is held from their wallet; if the wallet is short the shop is "
                          "PENDING_DEPOSIT (unlisted) until its owner pays it.")
    async def approve_merchant_application(self, info: Info,
                                           input: ReviewMerchantApplicationInput) -> ReviewMerchantApplicationPayload:
        key = decode_id(input.application_id, "MerchantApplication", "applicationId")
        application = await onboarding.approve(info.context.actor, key, input.note)
        return ReviewMerchantApplicationPayload(application=MerchantApplication.from_model(application))

    @mutation(description="ADMINs: decline an application, with a note for the applicant.")
    async def reject_merchant_application(self, info: Info,
                                          input: ReviewMerchantApplicationInput) -> ReviewMerchantApplicationPayload:
        key = decode_id(input.application_id, "MerchantApplication", "applicationId")
        application = await onboarding.reject(info.context.actor, key, input.note)
        return ReviewMerchantApplicationPayload(application=MerchantApplication.from_model(application))

    @mutation(description="The owner of a PENDING_DEPOSIT shop pays its deposit from their wallet; the shop opens.")
    async def pay_merchant_deposit(self, info: Info, input: PayMerchantDepositInput) -> PayMerchantDepositPayload:
        shop = await onboarding.pay_deposit(info.context.actor, decode_id(input.merchant_id, "Merchant", "merchantId"))
        return PayMerchantDepositPayload(merchant=Merchant.from_model(shop))
