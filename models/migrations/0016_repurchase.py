from tortoise import migrations
from tortoise.migrations import operations as ops
from models.repurchase.plans import PlanStatus, RenewalState, RenewalStatus
from models.repurchase.reminders import ReminderKind
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('kameng', '0015_recommendations')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Birthday',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user', fields.OneToOneField('kameng.User', source_field='user_id', db_constraint=True, to_field='id', related_name='birthday', on_delete=OnDelete.CASCADE)),
                ('month', fields.IntField()),
                ('day', fields.IntField()),
                ('changed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'birthday', 'app': 'kameng', 'indexes': [Index(fields=['month', 'day'])], 'pk_attr': 'id', 'table_description': "A user's birthday (no year). ``changed_at``: set at most once a year after the first time."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='BirthdayGrant',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user_id', fields.BigIntField()),
                ('year', fields.IntField()),
                ('points', fields.IntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'birthday_grant', 'app': 'kameng', 'unique_together': (('user_id', 'year'),), 'pk_attr': 'id', 'table_description': 'The birthday benefit of one user in one year: unique, written with the points.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ProductPlan',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('buyer', fields.ForeignKeyField('kameng.User', source_field='buyer_id', db_constraint=True, to_field='id', related_name='product_plans', on_delete=OnDelete.RESTRICT)),
                ('product', fields.ForeignKeyField('kameng.Product', source_field='product_id', db_constraint=True, to_field='id', related_name='plans', on_delete=OnDelete.RESTRICT)),
                ('quantity', fields.IntField()),
                ('period_days', fields.IntField()),
                ('auto_renew', fields.BooleanField(default=True)),
                ('topup_account', fields.CharField(default='', max_length=120)),
                ('idempotency_key', fields.CharField(max_length=80)),
                ('status', fields.CharEnumField(default=PlanStatus.ACTIVE, description='ACTIVE: ACTIVE\nPAUSED: PAUSED\nCANCELLED: CANCELLED\nLAPSED: LAPSED', enum_type=PlanStatus, max_length=16)),
                ('renewal_state', fields.CharEnumField(default=RenewalState.IDLE, description='IDLE: IDLE\nRENEWING: RENEWING', enum_type=RenewalState, max_length=16)),
                ('period', fields.IntField(default=0)),
                ('next_renewal_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('paused_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('pending_product_id', fields.BigIntField(null=True)),
                ('pending_quantity', fields.IntField(null=True)),
                ('pending_period_days', fields.IntField(null=True)),
                ('ended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'product_plan', 'app': 'kameng', 'unique_together': (('buyer_id', 'idempotency_key'),), 'indexes': [Index(fields=['status', 'renewal_state', 'next_renewal_at']), Index(fields=['buyer_id', 'id'])], 'pk_attr': 'id', 'table_description': "A buyer's plan of one product. ``period`` is the last period paid (or skipped), and"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='PlanRenewal',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('plan', fields.ForeignKeyField('kameng.ProductPlan', source_field='plan_id', db_constraint=True, to_field='id', related_name='renewals', on_delete=OnDelete.CASCADE)),
                ('period', fields.IntField()),
                ('status', fields.CharEnumField(default=RenewalStatus.PENDING, description='PENDING: PENDING\nPAID: PAID\nSKIPPED: SKIPPED\nLAPSED: LAPSED', enum_type=RenewalStatus, max_length=16)),
                ('attempts', fields.IntField(default=0)),
                ('next_attempt_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('leased_until', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('order_id', fields.BigIntField(null=True)),
                ('manual', fields.BooleanField(default=False)),
                ('last_error', fields.CharField(default='', max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'plan_renewal', 'app': 'kameng', 'unique_together': (('plan_id', 'period'),), 'indexes': [Index(fields=['status', 'next_attempt_at'])], 'pk_attr': 'id', 'table_description': 'One period of a plan. Unique per (plan, period): a period is charged at most once.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RenewalReminder',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('kind', fields.CharEnumField(description='ITEM_EXPIRY: ITEM_EXPIRY\nPLAN_ENDING: PLAN_ENDING\nPLAN_RENEWAL: PLAN_RENEWAL', enum_type=ReminderKind, max_length=16)),
                ('reference', fields.CharField(max_length=80)),
                ('user_id', fields.BigIntField()),
                ('product_id', fields.BigIntField()),
                ('offer_total', fields.DecimalField(null=True, max_digits=12, decimal_places=2)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'renewal_reminder', 'app': 'kameng', 'unique_together': (('kind', 'reference'),), 'pk_attr': 'id', 'table_description': 'A reminder sent, with the renewal offer it carried. The unique (kind, reference) is'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Order',
            name='valid_until',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Product',
            name='plan_max_days',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='Product',
            name='plan_min_days',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='Product',
            name='validity_days',
            field=fields.IntField(null=True),
        ),
    ]
