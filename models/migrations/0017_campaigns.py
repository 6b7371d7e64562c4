from tortoise import migrations
from tortoise.migrations import operations as ops
from models.lifecycle.campaigns import Arm, AudienceKind, CampaignStatus, Channel, OfferKind
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('kameng', '0016_repurchase')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Campaign',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=80)),
                ('status', fields.CharEnumField(default=CampaignStatus.ACTIVE, description='ACTIVE: ACTIVE\nPAUSED: PAUSED', enum_type=CampaignStatus, max_length=16)),
                ('audience', fields.CharEnumField(description='SEGMENT: SEGMENT\nRISK_BAND: RISK_BAND\nNO_VISIT: NO_VISIT\nEXPIRING: EXPIRING\nAFTER_DELIVERY: AFTER_DELIVERY', enum_type=AudienceKind, max_length=20)),
                ('segment_key', fields.CharField(null=True, max_length=64)),
                ('risk_band', fields.CharField(null=True, max_length=16)),
                ('trigger_days', fields.IntField(null=True)),
                ('offer', fields.CharEnumField(default=OfferKind.NONE, description='NONE: NONE\nCOUPON: COUPON\nPOINTS: POINTS\nBENEFIT: BENEFIT', enum_type=OfferKind, max_length=16)),
                ('coupon_id', fields.BigIntField(null=True)),
                ('points', fields.IntField(null=True)),
                ('benefit', fields.CharField(null=True, max_length=32)),
                ('title', fields.CharField(max_length=120)),
                ('body', fields.CharField(default='', max_length=1000)),
                ('channel', fields.CharEnumField(default=Channel.IN_APP, description='IN_APP: IN_APP', enum_type=Channel, max_length=16)),
                ('starts_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('ends_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('quiet_start_hour', fields.SmallIntField(default=22)),
                ('quiet_end_hour', fields.SmallIntField(default=8)),
                ('timezone', fields.CharField(default='Asia/Shanghai', max_length=64)),
                ('control_percent', fields.SmallIntField(default=10)),
                ('conversion_days', fields.IntField(default=7)),
                ('created_by_id', fields.BigIntField(null=True)),
                ('last_run_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'campaign', 'app': 'kameng', 'pk_attr': 'id', 'table_description': 'A campaign staff created. It runs (by the sweep or by hand) between ``starts_at`` and'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CampaignMember',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('campaign', fields.ForeignKeyField('kameng.Campaign', source_field='campaign_id', db_constraint=True, to_field='id', related_name='members', on_delete=OnDelete.CASCADE)),
                ('user_id', fields.BigIntField(db_index=True)),
                ('arm', fields.CharEnumField(description='TREATMENT: TREATMENT\nCONTROL: CONTROL', enum_type=Arm, max_length=16)),
                ('assigned_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('channel', fields.CharEnumField(default=Channel.IN_APP, description='IN_APP: IN_APP', enum_type=Channel, max_length=16)),
                ('delivered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('notification_id', fields.BigIntField(null=True)),
                ('clicked_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'campaign_member', 'app': 'kameng', 'unique_together': (('campaign', 'user_id'),), 'pk_attr': 'id', 'table_description': 'A user a campaign reached: sent a message (TREATMENT) or held out (CONTROL). One per'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MarketingCap',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user_id', fields.BigIntField(unique=True)),
                ('last_sent_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_campaign_id', fields.BigIntField(null=True)),
            ],
            options={'table': 'marketing_cap', 'app': 'kameng', 'pk_attr': 'id', 'table_description': 'When a user was last sent a marketing message by any campaign: the frequency cap is a'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SegmentSize',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('day', fields.DateField()),
                ('segment_key', fields.CharField(max_length=64)),
                ('buyers', fields.IntField()),
            ],
            options={'table': 'lifecycle_segment_size', 'app': 'kameng', 'unique_together': (('day', 'segment_key'),), 'pk_attr': 'id', 'table_description': 'How many buyers a segment held on a day (UTC), written by the segments sweep: the'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Survey',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order_id', fields.BigIntField(unique=True)),
                ('user_id', fields.BigIntField(db_index=True)),
                ('asked_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('score', fields.SmallIntField(null=True)),
                ('comment', fields.CharField(default='', max_length=1000)),
                ('answered_at', fields.DatetimeField(null=True, db_index=True, auto_now=False, auto_now_add=False)),
                ('ticket_id', fields.BigIntField(null=True)),
                ('user_coupon_id', fields.BigIntField(null=True)),
            ],
            options={'table': 'survey', 'app': 'kameng', 'pk_attr': 'id', 'table_description': 'A satisfaction survey about one order. An unhappy answer (6 or less) opens an'},
            bases=['Model'],
        ),
    ]
