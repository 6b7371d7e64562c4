"""Personal-data rights in the graph: ``exportMyData`` and ``deleteMyAccount`` (the decisions
and the registry of what is personal: resolvers/accounts/privacy.py, privacy_registry.py)."""

from __future__ import annotations

import strawberry

from resolvers.accounts import privacy
from schema.base import UserError, errors_field, mutation
from schema.context import Info


@strawberry.input(description="What to put in the export.")
class ExportMyDataInput:
    include_card_keys: bool = strawberry.field(
        default=True, description="Include the secrets of the card keys delivered to you, decrypted (each one is "
                                  "audited as a reveal, as when you open the order).")


@strawberry.type(description="Result of `exportMyData`.")
class ExportMyDataPayload:
    errors: list[UserError] = errors_field()
    archive: str | None = strawberry.field(
        default=None, description="The archive as one JSON document: `format`, `exportedAt`, `userId`, `wallet`, "
                                  "`tables` (model name -> your rows, secrets left out), `cardKeys` and `policies` "
                                  "(what deleting your account does to each table).")


@strawberry.input(description="Confirm the deletion of your account.")
class DeleteMyAccountInput:
    password: str = strawberry.field(description="Your current password (the deletion asks for it again).")


@strawberry.type(description="Result of `deleteMyAccount`.")
class DeleteMyAccountPayload:
    errors: list[UserError] = errors_field()
    deleted: bool | None = strawberry.field(
        default=None, description="True: the account is deleted (by this call or a concurrent one); you are signed "
                                  "out everywhere.")


@strawberry.type(description="Mutations of the viewer's personal data.")
class PrivacyMutations:
    @mutation(description="The signed-in user downloads everything Kameng holds about them, as a JSON archive "
                          "(rate-limited).")
    async def export_my_data(self, info: Info, input: ExportMyDataInput) -> ExportMyDataPayload:
        archive = await privacy.export_my_data(info.context.actor, include_card_keys=input.include_card_keys)
        return ExportMyDataPayload(archive=archive)

    @mutation(description="The signed-in user deletes their account: personal data erased or pseudonymised, "
                          "orders and the ledger kept anonymous. Refused (INVALID_STATE) while the wallet or a shop "
                          "holds money or an order is in progress. Idempotent.")
    async def delete_my_account(self, info: Info, input: DeleteMyAccountInput) -> DeleteMyAccountPayload:
        await privacy.delete_my_account(info.context.actor, password=input.password)
        return DeleteMyAccountPayload(deleted=True)
