from tortoise import migrations
from tortoise.migrations import operations as ops
from models.discovery.events import EventKind
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('kameng', '0005_trade_log')]

    initial = False

    operations = [
        ops.CreateModel(
            name='BehaviourEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('event_id', fields.CharField(unique=True, max_length=64)),
                ('kind', fields.CharEnumField(description='PRODUCT_VIEW: PRODUCT_VIEW\nPOST_VIEW: POST_VIEW\nSEARCH: SEARCH\nRECOMMENDATION_IMPRESSION: RECOMMENDATION_IMPRESSION\nRECOMMENDATION_CLICK: RECOMMENDATION_CLICK\nPAGE_VISIT: PAGE_VISIT\nORDER_PAID: ORDER_PAID\nORDER_DELIVERED: ORDER_DELIVERED\nORDER_REFUNDED: ORDER_REFUNDED\nPOST_CREATED: POST_CREATED\nPOST_LIKED: POST_LIKED\nCOMMENTED: COMMENTED\nFOLLOWED: FOLLOWED\nCIRCLE_JOINED: CIRCLE_JOINED\nCHECKED_IN: CHECKED_IN', enum_type=EventKind, max_length=32)),
                ('user_id', fields.BigIntField(null=True, db_index=True)),
                ('device_id', fields.CharField(null=True, db_index=True, max_length=64)),
                ('product_id', fields.BigIntField(null=True, db_index=True)),
                ('post_id', fields.BigIntField(null=True)),
                ('topic_id', fields.BigIntField(null=True)),
                ('merchant_id', fields.BigIntField(null=True)),
                ('order_id', fields.BigIntField(null=True)),
                ('query', fields.CharField(null=True, max_length=200)),
                ('surface', fields.CharField(null=True, max_length=32)),
                ('token', fields.CharField(null=True, max_length=200)),
                ('amount', fields.DecimalField(null=True, max_digits=12, decimal_places=2)),
                ('personalised', fields.BooleanField(default=True)),
                ('client_time', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('occurred_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'behaviour_event', 'app': 'kameng', 'pk_attr': 'id', 'table_description': 'One thing a user (or an anonymous device) did. ``personalised`` is False when the user'},
            bases=['Model'],
        ),
    ]
