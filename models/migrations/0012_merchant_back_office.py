from tortoise import migrations
from tortoise.migrations import operations as ops
from models.commerce.merchants import MerchantStatus
from models.commerce.onboarding import ApplicationStatus
from models.commerce.withdrawals import WithdrawalStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('kameng', '0011_events_experiments')]

    initial = False

    operations = [
        ops.CreateModel(
            name='MerchantApplication',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('applicant', fields.ForeignKeyField('kameng.User', source_field='applicant_id', db_constraint=True, to_field='id', related_name='merchant_applications', on_delete=OnDelete.RESTRICT)),
                ('shop_name', fields.CharField(max_length=80)),
                ('description', fields.TextField(default='', unique=False)),
                ('contact', fields.CharField(max_length=200)),
                ('status', fields.CharEnumField(default=ApplicationStatus.PENDING, description='PENDING: PENDING\nAPPROVED: APPROVED\nREJECTED: REJECTED', enum_type=ApplicationStatus, max_length=16)),
                ('review_note', fields.CharField(default='', max_length=300)),
                ('reviewed_by_id', fields.BigIntField(null=True)),
                ('merchant_id', fields.BigIntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('reviewed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'merchant_application', 'app': 'kameng', 'indexes': [Index(fields=['status', 'id']), Index(fields=['applicant_id', 'id'])], 'pk_attr': 'id', 'table_description': 'One application to become a merchant. On approval the shop is created and linked here.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MerchantCoupon',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('coupon_id', fields.BigIntField(unique=True)),
                ('merchant', fields.ForeignKeyField('kameng.Merchant', source_field='merchant_id', db_constraint=True, to_field='id', related_name='coupons', on_delete=OnDelete.RESTRICT)),
                ('created_by_id', fields.BigIntField()),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'merchant_coupon', 'app': 'kameng', 'indexes': [Index(fields=['merchant_id', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SupplierConfig',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('merchant', fields.ForeignKeyField('kameng.Merchant', source_field='merchant_id', db_constraint=True, to_field='id', related_name='supplier_configs', on_delete=OnDelete.CASCADE)),
                ('product_id', fields.BigIntField(null=True)),
                ('scope', fields.CharField(max_length=40)),
                ('endpoint', fields.CharField(max_length=500)),
                ('secret_key_id', fields.CharField(default='', max_length=40)),
                ('secret_ciphertext', fields.TextField(default='', unique=False)),
                ('secret_hint', fields.CharField(default='', max_length=8)),
                ('timeout_seconds', fields.FloatField(default=5.0)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'supplier_config', 'app': 'kameng', 'unique_together': (('merchant_id', 'scope'),), 'pk_attr': 'id', 'table_description': '``scope`` is "shop" for the shop\'s default, or "product:<id>" for one product.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Withdrawal',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('merchant', fields.ForeignKeyField('kameng.Merchant', source_field='merchant_id', db_constraint=True, to_field='id', related_name='withdrawals', on_delete=OnDelete.RESTRICT)),
                ('amount', fields.DecimalField(max_digits=12, decimal_places=2)),
                ('fee', fields.DecimalField(max_digits=12, decimal_places=2)),
                ('currency', fields.CharField(default='CNY', max_length=3)),
                ('status', fields.CharEnumField(default=WithdrawalStatus.REQUESTED, description='REQUESTED: REQUESTED\nAPPROVED: APPROVED\nPAID: PAID\nREJECTED: REJECTED', enum_type=WithdrawalStatus, max_length=16)),
                ('requested_by_id', fields.BigIntField()),
                ('note', fields.CharField(default='', max_length=300)),
                ('payout_reference', fields.CharField(default='', max_length=120)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('decided_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('paid_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'merchant_withdrawal', 'app': 'kameng', 'indexes': [Index(fields=['merchant_id', 'id']), Index(fields=['status', 'id'])], 'pk_attr': 'id', 'table_description': "One payout request. ``amount`` leaves the shop's balance, the payee receives"},
            bases=['Model'],
        ),
        ops.AlterField(
            model_name='Merchant',
            name='status',
            field=fields.CharEnumField(default=MerchantStatus.ACTIVE, description='ACTIVE: ACTIVE\nSUSPENDED: SUSPENDED\nPENDING_DEPOSIT: PENDING_DEPOSIT', enum_type=MerchantStatus, max_length=16),
        ),
    ]
