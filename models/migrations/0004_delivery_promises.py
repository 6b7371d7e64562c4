from tortoise import migrations
from tortoise.migrations import operations as ops
from models.commerce.catalog import LateCompensation
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('kameng', '0003_community_and_loyalty')]

    initial = False

    operations = [
        ops.CreateModel(
            name='LateDeliveryCompensation',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order', fields.OneToOneField('kameng.Order', source_field='order_id', db_constraint=True, to_field='id', related_name='late_compensation', on_delete=OnDelete.RESTRICT)),
                ('merchant_id', fields.BigIntField()),
                ('buyer_id', fields.BigIntField()),
                ('kind', fields.CharEnumField(description='NONE: NONE\nPOINTS: POINTS\nCOUPON: COUPON\nAMOUNT: AMOUNT', enum_type=LateCompensation, max_length=16)),
                ('points', fields.IntField(default=0)),
                ('amount', fields.DecimalField(default=0, max_digits=12, decimal_places=2)),
                ('user_coupon_id', fields.BigIntField(null=True)),
                ('paid_from', fields.CharField(default='', max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'late_delivery_compensation', 'app': 'kameng', 'pk_attr': 'id', 'table_description': "What a late order's buyer was given. Unique per order: the row is written in the"},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Order',
            name='delivery_seconds',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='Order',
            name='promised_minutes',
            field=fields.IntField(null=True),
        ),
        ops.AddIndex(
            model_name='Order',
            index=Index(fields=['merchant_id', 'delivered_at']),
        ),
        ops.AddField(
            model_name='Product',
            name='late_compensation',
            field=fields.CharEnumField(default=LateCompensation.NONE, description='NONE: NONE\nPOINTS: POINTS\nCOUPON: COUPON\nAMOUNT: AMOUNT', enum_type=LateCompensation, max_length=16),
        ),
        ops.AddField(
            model_name='Product',
            name='late_compensation_amount',
            field=fields.DecimalField(default=0, max_digits=12, decimal_places=2),
        ),
        ops.AddField(
            model_name='Product',
            name='late_compensation_coupon_id',
            field=fields.BigIntField(null=True),
        ),
        ops.AddField(
            model_name='Product',
            name='late_compensation_points',
            field=fields.IntField(default=0),
        ),
    ]
