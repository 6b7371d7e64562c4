"""The post-purchase survey in the graph: the viewer's open surveys and their answer."""

from __future__ import annotations

from datetime import datetime

import strawberry

from models.lifecycle.surveys import Survey as SurveyModel
from resolvers.lifecycle import surveys
from schema.base import UserError, decode_id, errors_field, mutation
from schema.context import Info


def _gid(kind: str, pk: int) -> strawberry.ID:
    return strawberry.ID(str(strawberry.relay.GlobalID(kind, str(pk))))


@strawberry.type(description="A satisfaction survey about one delivered order, asked some days after delivery.")
class Survey:
    id: strawberry.ID = strawberry.field(description="The survey's global ID (in the SURVEY notification's data).")
    order_id: strawberry.ID = strawberry.field(description="The order's global ID.")
    asked_at: datetime = strawberry.field(description="When it was asked.")
    score: int | None = strawberry.field(description="The answer, 0 to 10; null until answered.")
    comment: str = strawberry.field(description="The comment given with the answer.")
    answered_at: datetime | None = strawberry.field(description="When it was answered.")
    ticket_id: strawberry.ID | None = strawberry.field(
        description="The after-sales ticket an answer of 6 or less opened (or the order's open one).")
    compensated: bool = strawberry.field(description="True if the answer was granted a compensation coupon.")

    @classmethod
    def of(cls, s: SurveyModel) -> Survey:
        return cls(id=_gid("Survey", s.id), order_id=_gid("Order", s.order_id), asked_at=s.asked_at, score=s.score,
                   comment=s.comment, answered_at=s.answered_at,
                   ticket_id=_gid("Ticket", s.ticket_id) if s.ticket_id is not None else None,
                   compensated=s.user_coupon_id is not None)


@strawberry.type(description="Post-purchase surveys.")
class SurveyQueries:
    @strawberry.field(description="The viewer's unanswered surveys, newest first (at most 50).")
    async def my_pending_surveys(self, info: Info) -> list[Survey]:
        if info.context.actor.user is None:
            return []
        return [Survey.of(s) for s in await surveys.pending(info.context.actor)]


@strawberry.input(description="An answer to a post-purchase survey.")
class AnswerSurveyInput:
    survey_id: strawberry.ID = strawberry.field(description="The survey's global ID.")
    score: int = strawberry.field(description="How satisfied, 0 (not at all) to 10 (would recommend us).")
    comment: str = strawberry.field(default="", description="What went well or wrong (1000 characters).")


@strawberry.type(description="Result of `answerSurvey`.")
class AnswerSurveyPayload:
    errors: list[UserError] = errors_field()
    survey: Survey | None = strawberry.field(default=None, description="The answered survey.")


@strawberry.type(description="Post-purchase survey mutations.")
class SurveyMutations:
    @mutation(description="The buyer answers their survey, once; 6 or less opens an after-sales ticket on the order "
                          "and may grant a compensation coupon.")
    async def answer_survey(self, info: Info, input: AnswerSurveyInput) -> AnswerSurveyPayload:
        key = decode_id(input.survey_id, "Survey", "surveyId")
        answered = await surveys.answer(info.context.actor, key, input.score, input.comment)
        return AnswerSurveyPayload(survey=Survey.of(answered))
