"""Settings of the loop that brings buyers back (issues 11 to 14): gifts, invitations,
after-sales tickets and claims, behaviour events, recommendations, the merchant back office and
lifecycle. A mixin of ``kameng.settings.Settings`` (read from the same ``KAMENG_*``
environment), kept apart so that neither module outgrows a reader."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, Field, field_validator


class LoopSettings(BaseModel):
    # Gifts: an unclaimed gift is refunded to its sender after this many days.
    gift_claim_days: float = Field(default=7, gt=0)
    gift_claim_limit: str = "20/minute"  # claim-code attempts per user and per address
    # After-sales tickets (resolvers/trust/tickets.py): SLA clocks in minutes from opening,
    # first response and resolution, and the shorter ones of GOLD buyers and PRIORITY_SUPPORT.
    ticket_first_response_minutes: float = Field(default=4 * 60, gt=0)
    ticket_resolution_minutes: float = Field(default=24 * 60, gt=0)
    ticket_priority_first_response_minutes: float = Field(default=60, gt=0)
    ticket_priority_resolution_minutes: float = Field(default=8 * 60, gt=0)
    ticket_message_limit: str = "30/minute"
    # Self-service claims (resolvers/trust/claims.py): a KEY_INVALID report is resolved by the
    # rules within this many hours of the key's delivery; a buyer's claim rate is normal when
    # it is their first claim in the window or claims / delivered orders in the window stay
    # at or below the maximum; a shop may contest an automatic outcome this long after it.
    claim_report_window_hours: float = Field(default=72, gt=0)
    claim_rate_window_days: float = Field(default=30, gt=0)
    claim_rate_max: Decimal = Field(default=Decimal("0.20"), ge=0, le=1)
    claim_contest_hours: float = Field(default=72, gt=0)
    # Invitations: both sides earn points when the invitee's first qualifying order completes.
    points_invite_inviter: int = Field(default=100, ge=0)
    points_invite_invitee: int = Field(default=50, ge=0)
    invite_min_order_total: Decimal = Field(default=Decimal("10.00"), ge=0)  # against 0.01 orders
    invite_rewards_per_month: int = Field(default=20, ge=0)  # rewarded referrals per inviter, 30 days
    # -- issue 11 item 1: behaviour events (resolvers/discovery/tracking.py)
    # Most events one `track` request may carry.
    track_max_events: int = Field(default=500, ge=1, le=5000)
    # Events (not requests) per device and per client address ("N/period"); a batch counts
    # as many as it carries.
    track_limit_per_device: str = "5000/minute"
    track_limit_per_ip: str = "20000/minute"
    # The per-process buffer is written every this many seconds, or sooner once it holds
    # events_flush_batch events; past events_buffer_max the oldest waiting events are dropped.
    events_flush_seconds: float = Field(default=0.5, gt=0)
    events_flush_batch: int = Field(default=5000, ge=1)
    events_buffer_max: int = Field(default=200_000, ge=1)
    # With Redis, API processes queue their flushed batches in Redis and the processes that
    # consume jobs write them (resolvers/discovery/event_queue.py); false: each API process
    # writes its own. Past events_queue_max_batches waiting batches the oldest go.
    events_queue: bool = True
    events_queue_max_batches: int = Field(default=10_000, ge=1)
    # Raw events older than this many days are folded into daily aggregates and deleted.
    events_retention_days: int = Field(default=90, ge=1)
    # -- issue 11: recommendations
    # How often job-consuming processes retrain the model and rewrite the served lists.
    recommend_train_seconds: float = Field(default=300, gt=0)
    # Behaviour older than this is not learnt from; an interaction's weight halves every half-life.
    recommend_window_days: float = Field(default=90, gt=0)
    recommend_half_life_days: float = Field(default=14, gt=0)
    # Products kept per precomputed list, and the most products the model learns at once.
    recommend_list_size: int = Field(default=50, ge=10)
    recommend_max_items: int = Field(default=4000, ge=100)
    # An order paid within this long after a click on a recommendation is attributed to it.
    recommend_attribution_hours: float = Field(default=24, gt=0)
    # "New" in NEW_AND_WELL_REVIEWED: listed within this many days.
    recommend_new_days: float = Field(default=30, gt=0)

    # Merchant back office (issue 13): the deposit held when an application is approved, and
    # payouts (the smallest request, and the flat fee the platform keeps of each).
    merchant_deposit: Decimal = Field(default=Decimal("500.00"), ge=0)
    withdrawal_minimum: Decimal = Field(default=Decimal("100.00"), gt=0)
    withdrawal_fee: Decimal = Field(default=Decimal("2.00"), ge=0)
    # Ceiling of a supplier's own timeout (a merchant may choose less).
    supplier_timeout_max_seconds: float = Field(default=30.0, gt=0)
    # -- issue 12: lifecycle (RFM segments, churn risk)
    # Lifecycle stages by days since the last purchase: silent after this many, lapsed after.
    lifecycle_silent_days: int = Field(default=30, ge=1)
    lifecycle_lapsed_days: int = Field(default=90, ge=2)
    # How often job-consuming processes recompute every buyer's RFM and segment, and refit the
    # churn model and every buyer's risk band.
    rfm_sweep_seconds: float = Field(default=6 * 3600.0, gt=0)
    # One buyer's refresh (a job per completed order) ranks the buyer among the stored buyers: the
    # database counts them while there are fewer than rfm_exact_below; past that, each process
    # ranks against their values read at most rfm_population_seconds ago (or by its last sweep).
    rfm_exact_below: int = Field(default=5000, ge=0)
    rfm_population_seconds: float = Field(default=300.0, ge=0)
    churn_fit_seconds: float = Field(default=24 * 3600.0, gt=0)
    # Fewer buyers than this: the churn model keeps its last fit (or its prior) instead of refitting.
    churn_min_buyers: int = Field(default=30, ge=5)
    # Serving-path experiments (resolvers/lifecycle/exposures.py): a process re-reads an
    # experiment's definition after this many seconds (at once after its own defineExperiment),
    # and writes buffered exposures every experiment_flush_seconds.
    experiment_cache_seconds: float = Field(default=10, ge=0)
    experiment_flush_seconds: float = Field(default=1, gt=0)

    # -- issue 13: repurchase (resolvers/repurchase)
    # A failed plan renewal is tried again this many days after each failure, then the plan lapses.
    renewal_retry_days: str = "1,3,5"
    # The reminder before each plan renewal, and the renewal offer before a delivered item's
    # validity (or a plan without auto-renew) runs out: this many days ahead.
    renewal_reminder_days: float = Field(default=3, gt=0)
    expiry_reminder_days: float = Field(default=3, gt=0)
    # A renewal claimed by the sweep is sent again if still open after this many seconds.
    renewal_lease_seconds: float = Field(default=600, gt=0)
    # Most due plans claimed per sweep (each becomes one renewal job).
    renewal_claim_batch: int = Field(default=1000, ge=1)
    # The yearly birthday benefit, in points (0: none).
    points_birthday: int = Field(default=100, ge=0)
    # -- issue 15 item 3: delivery (workers/relay.py). The committing process publishes its
    # outbox rows at once; the sweep sends only rows older than this (a crash's leftovers).
    outbox_grace_seconds: float = Field(default=1.0, ge=0)

    # -- issue 12 item 3: campaigns and the post-purchase survey (resolvers/lifecycle/campaigns.py, surveys.py)
    # At most one marketing message per user per this many days, across every campaign.
    marketing_cap_days: float = Field(default=7, gt=0)
    # A new campaign's defaults: the share held out as control, and the zone of its quiet hours.
    campaign_control_percent: int = Field(default=10, ge=0, le=50)
    campaign_timezone: str = "Asia/Shanghai"
    # How often job-consuming processes run every active campaign (and ask due surveys).
    campaign_sweep_seconds: float = Field(default=3600, gt=0)
    # The survey is asked this many days after delivery; an answer of 6 or less gets the coupon
    # with this code (empty: none) besides the after-sales ticket.
    survey_delay_days: float = Field(default=7, gt=0)
    survey_compensation_coupon: str = ""

    @property
    def renewal_retry_schedule(self) -> list[float]:
        return [float(part) for part in self.renewal_retry_days.replace(" ", "").split(",") if part]

    @field_validator("renewal_retry_days")
    @classmethod
    def _retry_days(cls, value: str) -> str:
        parts = [part for part in value.replace(" ", "").split(",") if part]
        if not parts or any(not part.replace(".", "", 1).isdigit() or float(part) <= 0 for part in parts):
            raise ValueError("KAMENG_RENEWAL_RETRY_DAYS: positive numbers of days, comma-separated (e.g. 1,3,5)")
        return value
