from tortoise import migrations
from tortoise.migrations import operations as ops
from models.commerce.catalog import DeliveryKind, ProductStatus
from models.commerce.merchants import MerchantStatus
from models.commerce.inventory import CardKeyStatus
from models.commerce.orders import OrderStatus
from models.commerce.payments import PaymentMethod, PaymentStatus
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('kameng', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Account',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('code', fields.CharField(unique=True, max_length=64)),
                ('currency', fields.CharField(default='CNY', max_length=3)),
                ('allow_negative', fields.BooleanField(default=False)),
                ('balance', fields.DecimalField(default=0, max_digits=14, decimal_places=2)),
            ],
            options={'table': 'ledger_account', 'app': 'kameng', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Category',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=60)),
                ('slug', fields.CharField(unique=True, max_length=60)),
                ('parent', fields.ForeignKeyField('kameng.Category', source_field='parent_id', null=True, db_constraint=True, to_field='id', related_name='children', on_delete=OnDelete.SET_NULL)),
            ],
            options={'table': 'category', 'app': 'kameng', 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Merchant',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('owner', fields.ForeignKeyField('kameng.User', source_field='owner_id', db_constraint=True, to_field='id', related_name='merchants', on_delete=OnDelete.RESTRICT)),
                ('name', fields.CharField(unique=True, max_length=80)),
                ('description', fields.TextField(default='', unique=False)),
                ('status', fields.CharEnumField(default=MerchantStatus.ACTIVE, description='ACTIVE: ACTIVE\nSUSPENDED: SUSPENDED', enum_type=MerchantStatus, max_length=16)),
                ('supplier_url', fields.CharField(default='', max_length=500)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'merchant', 'app': 'kameng', 'pk_attr': 'id', 'table_description': 'A shop, owned by one MERCHANT user. Its deposit and earnings live in the ledger.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Posting',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('reason', fields.CharField(max_length=40)),
                ('reference', fields.CharField(max_length=120)),
                ('memo', fields.CharField(default='', max_length=300)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'ledger_posting', 'app': 'kameng', 'unique_together': (('reason', 'reference'),), 'pk_attr': 'id', 'table_description': 'One balanced movement of money, unique per (reason, reference): replays post nothing.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Entry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('posting', fields.ForeignKeyField('kameng.Posting', source_field='posting_id', db_constraint=True, to_field='id', related_name='entries', on_delete=OnDelete.RESTRICT)),
                ('account', fields.ForeignKeyField('kameng.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='entries', on_delete=OnDelete.RESTRICT)),
                ('amount', fields.DecimalField(max_digits=14, decimal_places=2)),
            ],
            options={'table': 'ledger_entry', 'app': 'kameng', 'indexes': [Index(fields=['account_id', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Product',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('merchant', fields.ForeignKeyField('kameng.Merchant', source_field='merchant_id', db_constraint=True, to_field='id', related_name='products', on_delete=OnDelete.RESTRICT)),
                ('category', fields.ForeignKeyField('kameng.Category', source_field='category_id', null=True, db_constraint=True, to_field='id', related_name='products', on_delete=OnDelete.SET_NULL)),
                ('title', fields.CharField(max_length=120)),
                ('description', fields.TextField(default='', unique=False)),
                ('price', fields.DecimalField(max_digits=12, decimal_places=2)),
                ('currency', fields.CharField(default='CNY', max_length=3)),
                ('delivery_kind', fields.CharEnumField(description='CARD_KEY: CARD_KEY\nDIRECT_TOPUP: DIRECT_TOPUP\nMANUAL: MANUAL', enum_type=DeliveryKind, max_length=16)),
                ('wholesale_tiers', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('min_quantity', fields.IntField(default=1)),
                ('max_quantity', fields.IntField(default=100)),
                ('delivery_promise_minutes', fields.IntField(default=10)),
                ('stock_limit', fields.IntField(null=True)),
                ('sold_count', fields.IntField(default=0)),
                ('rating_sum', fields.IntField(default=0)),
                ('review_count', fields.IntField(default=0)),
                ('status', fields.CharEnumField(default=ProductStatus.ACTIVE, description='ACTIVE: ACTIVE\nHIDDEN: HIDDEN', enum_type=ProductStatus, max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'product', 'app': 'kameng', 'indexes': [Index(fields=['status', 'id']), Index(fields=['merchant_id', 'id']), Index(fields=['status', 'price', 'id']), Index(fields=['status', 'sold_count', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Order',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order_no', fields.CharField(unique=True, max_length=32)),
                ('buyer', fields.ForeignKeyField('kameng.User', source_field='buyer_id', null=True, db_constraint=True, to_field='id', related_name='orders', on_delete=OnDelete.RESTRICT)),
                ('product', fields.ForeignKeyField('kameng.Product', source_field='product_id', db_constraint=True, to_field='id', related_name='orders', on_delete=OnDelete.RESTRICT)),
                ('merchant', fields.ForeignKeyField('kameng.Merchant', source_field='merchant_id', db_constraint=True, to_field='id', related_name='orders', on_delete=OnDelete.RESTRICT)),
                ('quantity', fields.IntField()),
                ('unit_price', fields.DecimalField(max_digits=12, decimal_places=2)),
                ('total', fields.DecimalField(max_digits=12, decimal_places=2)),
                ('currency', fields.CharField(default='CNY', max_length=3)),
                ('status', fields.CharEnumField(default=OrderStatus.PENDING_PAYMENT, description='PENDING_PAYMENT: PENDING_PAYMENT\nPAID: PAID\nDELIVERING: DELIVERING\nDELIVERED: DELIVERED\nCOMPLETED: COMPLETED\nCANCELLED: CANCELLED\nFAILED: FAILED\nREFUNDED: REFUNDED', enum_type=OrderStatus, max_length=20)),
                ('idempotency_scope', fields.CharField(max_length=280)),
                ('idempotency_key', fields.CharField(max_length=80)),
                ('contact_email', fields.CharField(default='', max_length=254)),
                ('query_password_hash', fields.CharField(default='', max_length=255)),
                ('topup_account', fields.CharField(default='', max_length=120)),
                ('from_post_id', fields.BigIntField(null=True)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('paid_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('delivered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('completed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('delivery_due_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'orders', 'app': 'kameng', 'unique_together': (('idempotency_scope', 'idempotency_key'),), 'indexes': [Index(fields=['buyer_id', 'id']), Index(fields=['status', 'expires_at']), Index(fields=['status', 'delivered_at']), Index(fields=['merchant_id', 'id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CardKey',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('product', fields.ForeignKeyField('kameng.Product', source_field='product_id', db_constraint=True, to_field='id', related_name='card_keys', on_delete=OnDelete.RESTRICT)),
                ('key_id', fields.CharField(max_length=32)),
                ('ciphertext', fields.TextField(unique=False)),
                ('fingerprint', fields.CharField(max_length=64)),
                ('status', fields.CharEnumField(default=CardKeyStatus.AVAILABLE, description='AVAILABLE: AVAILABLE\nRESERVED: RESERVED\nSOLD: SOLD', enum_type=CardKeyStatus, max_length=16)),
                ('order', fields.ForeignKeyField('kameng.Order', source_field='order_id', null=True, db_constraint=True, to_field='id', related_name='card_keys', on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('sold_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'card_key', 'app': 'kameng', 'unique_together': (('product_id', 'fingerprint'),), 'indexes': [Index(fields=['product_id', 'status', 'id']), Index(fields=['order_id'])], 'pk_attr': 'id', 'table_description': 'A card secret (卡密), encrypted at rest and deduplicated by an HMAC fingerprint.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='CardKeyReveal',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('card_key', fields.ForeignKeyField('kameng.CardKey', source_field='card_key_id', db_constraint=True, to_field='id', related_name='reveals', on_delete=OnDelete.CASCADE)),
                ('order', fields.ForeignKeyField('kameng.Order', source_field='order_id', db_constraint=True, to_field='id', related_name='reveals', on_delete=OnDelete.CASCADE)),
                ('user', fields.ForeignKeyField('kameng.User', source_field='user_id', null=True, db_constraint=True, to_field='id', related_name='reveals', on_delete=OnDelete.SET_NULL)),
                ('ip', fields.CharField(default='', max_length=64)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'card_key_reveal', 'app': 'kameng', 'pk_attr': 'id', 'table_description': 'Audit: every time a secret was shown, to whom.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='OrderEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order', fields.ForeignKeyField('kameng.Order', source_field='order_id', db_constraint=True, to_field='id', related_name='events', on_delete=OnDelete.CASCADE)),
                ('status', fields.CharEnumField(description='PENDING_PAYMENT: PENDING_PAYMENT\nPAID: PAID\nDELIVERING: DELIVERING\nDELIVERED: DELIVERED\nCOMPLETED: COMPLETED\nCANCELLED: CANCELLED\nFAILED: FAILED\nREFUNDED: REFUNDED', enum_type=OrderStatus, max_length=20)),
                ('actor', fields.CharField(default='system', max_length=40)),
                ('note', fields.CharField(default='', max_length=300)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'order_event', 'app': 'kameng', 'indexes': [Index(fields=['order_id', 'id'])], 'pk_attr': 'id', 'table_description': 'One transition of an order: when, to what, by whom, why.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Payment',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order', fields.ForeignKeyField('kameng.Order', source_field='order_id', db_constraint=True, to_field='id', related_name='payments', on_delete=OnDelete.RESTRICT)),
                ('method', fields.CharEnumField(description='WALLET: WALLET\nEXTERNAL: EXTERNAL', enum_type=PaymentMethod, max_length=16)),
                ('provider', fields.CharField(default='', max_length=32)),
                ('amount', fields.DecimalField(max_digits=12, decimal_places=2)),
                ('currency', fields.CharField(default='CNY', max_length=3)),
                ('status', fields.CharEnumField(default=PaymentStatus.PENDING, description='PENDING: PENDING\nSUCCEEDED: SUCCEEDED\nREFUNDED_LATE: REFUNDED_LATE', enum_type=PaymentStatus, max_length=16)),
                ('provider_txn_id', fields.CharField(null=True, max_length=80)),
                ('pay_url', fields.CharField(default='', max_length=500)),
                ('callback_response', fields.CharField(default='', max_length=200)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('paid_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'payment', 'app': 'kameng', 'unique_together': (('provider', 'provider_txn_id'),), 'indexes': [Index(fields=['order_id'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
