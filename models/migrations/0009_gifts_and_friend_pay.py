from tortoise import migrations
from tortoise.migrations import operations as ops
from models.commerce.friendpay import FriendPayStatus
from models.commerce.gifts import GiftStatus
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('kameng', '0008_invitations')]

    initial = False

    operations = [
        ops.CreateModel(
            name='FriendPayRequest',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order_id', fields.BigIntField(unique=True)),
                ('requester_id', fields.BigIntField(db_index=True)),
                ('code', fields.CharField(unique=True, max_length=32)),
                ('status', fields.CharEnumField(default=FriendPayStatus.OPEN, description='OPEN: OPEN\nPAID: PAID\nWITHDRAWN: WITHDRAWN', enum_type=FriendPayStatus, max_length=16)),
                ('payer_id', fields.BigIntField(null=True, db_index=True)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('paid_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'friend_pay_request', 'app': 'kameng', 'pk_attr': 'id', 'table_description': 'One per order: asking again returns it (or reopens it with a new code once withdrawn).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Gift',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order_id', fields.BigIntField(unique=True)),
                ('product_id', fields.BigIntField()),
                ('quantity', fields.IntField(default=1)),
                ('sender_id', fields.BigIntField(db_index=True)),
                ('recipient_id', fields.BigIntField(null=True, db_index=True)),
                ('code_digest', fields.CharField(unique=True, max_length=64)),
                ('message', fields.CharField(default='', max_length=200)),
                ('status', fields.CharEnumField(default=GiftStatus.PENDING, description='PENDING: PENDING\nCLAIMED: CLAIMED\nRETURNED: RETURNED', enum_type=GiftStatus, max_length=16)),
                ('expires_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('claimed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('returned_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'gift', 'app': 'kameng', 'pk_attr': 'id', 'table_description': '``recipient_id`` is set for a gift to a user and, for a gift by claim code, when someone'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Order',
            name='awaiting_claim',
            field=fields.BooleanField(default=False),
        ),
        ops.AddField(
            model_name='Order',
            name='delivery_from',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Payment',
            name='payer_id',
            field=fields.BigIntField(null=True),
        ),
    ]
