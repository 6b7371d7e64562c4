from tortoise import migrations
from tortoise.migrations import operations as ops
from models.commerce.inventory import CardKeyStatus
from models.trust.claims import ClaimOutcome, ClaimReason, ClaimStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class _AlterFieldStateOnly(ops.AlterField):
    """CardKeyStatus gained INVALID: the column stays VARCHAR(16), only the field's description
    changes, so no DDL runs. (Tortoise's SQLite AlterField rebuilds the table and loses the
    (product_id, fingerprint) unique constraint that key imports rely on.)"""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):  # type: ignore[no-untyped-def]
        return None

    async def database_backward(self, app_label, old_state, new_state, state_editor=None):  # type: ignore[no-untyped-def]
        return None


class Migration(migrations.Migration):
    dependencies = [('kameng', '0012_merchant_back_office')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Claim',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order', fields.ForeignKeyField('kameng.Order', source_field='order_id', db_constraint=True, to_field='id', related_name='claims', on_delete=OnDelete.RESTRICT)),
                ('subject', fields.CharField(max_length=40)),
                ('buyer_id', fields.BigIntField(db_index=True)),
                ('merchant_id', fields.BigIntField(db_index=True)),
                ('reason', fields.CharEnumField(description='KEY_INVALID: KEY_INVALID\nNOT_RECEIVED: NOT_RECEIVED', enum_type=ClaimReason, max_length=16)),
                ('ticket_id', fields.BigIntField(null=True)),
                ('card_key_id', fields.BigIntField(null=True)),
                ('replacement_key_id', fields.BigIntField(null=True)),
                ('message', fields.CharField(default='', max_length=500)),
                ('status', fields.CharEnumField(description='PENDING_REVIEW: PENDING_REVIEW\nRESOLVED: RESOLVED\nREJECTED: REJECTED\nCONTESTED: CONTESTED\nREVERSED: REVERSED', enum_type=ClaimStatus, max_length=16)),
                ('outcome', fields.CharEnumField(default=ClaimOutcome.NONE, description='NONE: NONE\nREPLACEMENT: REPLACEMENT\nREFUND: REFUND', enum_type=ClaimOutcome, max_length=16)),
                ('automatic', fields.BooleanField(default=False)),
                ('rule', fields.CharField(default='', max_length=40)),
                ('amount', fields.DecimalField(default=0, max_digits=12, decimal_places=2)),
                ('paid_from', fields.CharField(default='', max_length=64)),
                ('contest_reason', fields.CharField(default='', max_length=500)),
                ('contested_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('decided_by_id', fields.BigIntField(null=True)),
                ('decision_note', fields.CharField(default='', max_length=300)),
                ('resolved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'claim', 'app': 'kameng', 'unique_together': (('order_id', 'subject'),), 'indexes': [Index(fields=['buyer_id', 'created_at']), Index(fields=['status', 'id'])], 'pk_attr': 'id', 'table_description': 'One report of a problem with an order. Unique per (order, subject), the subject being'},
            bases=['Model'],
        ),
        _AlterFieldStateOnly(
            model_name='CardKey',
            name='status',
            field=fields.CharEnumField(default=CardKeyStatus.AVAILABLE, description='AVAILABLE: AVAILABLE\nRESERVED: RESERVED\nSOLD: SOLD\nINVALID: INVALID', enum_type=CardKeyStatus, max_length=16),
        ),
    ]
