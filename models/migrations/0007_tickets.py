from tortoise import migrations
from tortoise.migrations import operations as ops
from models.trust.tickets import AuthorRole, EntryKind, TicketReason, TicketStatus
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('kameng', '0006_behaviour_events')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Ticket',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order', fields.ForeignKeyField('kameng.Order', source_field='order_id', db_constraint=True, to_field='id', related_name='tickets', on_delete=OnDelete.RESTRICT)),
                ('buyer_id', fields.BigIntField()),
                ('merchant_id', fields.BigIntField()),
                ('reason', fields.CharEnumField(description='NOT_RECEIVED: NOT_RECEIVED\nKEY_INVALID: KEY_INVALID\nWRONG_ITEM: WRONG_ITEM\nOTHER: OTHER', enum_type=TicketReason, max_length=20)),
                ('status', fields.CharEnumField(default=TicketStatus.OPEN, description='OPEN: OPEN\nWAITING_ON_MERCHANT: WAITING_ON_MERCHANT\nWAITING_ON_BUYER: WAITING_ON_BUYER\nESCALATED: ESCALATED\nRESOLVED: RESOLVED\nCLOSED: CLOSED', enum_type=TicketStatus, max_length=24)),
                ('priority', fields.BooleanField(default=False)),
                ('first_response_due_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('resolution_due_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('due_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('first_response_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('escalated_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('resolved_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('first_response_seconds', fields.IntField(null=True)),
                ('resolution_seconds', fields.IntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'ticket', 'app': 'kameng', 'indexes': [Index(fields=['order_id', 'id']), Index(fields=['buyer_id', 'id']), Index(fields=['merchant_id', 'created_at']), Index(fields=['status', 'due_at'])], 'pk_attr': 'id', 'table_description': 'One complaint about one order. SLA deadlines are fixed when it is opened (shorter for'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TicketEntry',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('ticket', fields.ForeignKeyField('kameng.Ticket', source_field='ticket_id', db_constraint=True, to_field='id', related_name='entries', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharEnumField(description='MESSAGE: MESSAGE\nSTATUS: STATUS', enum_type=EntryKind, max_length=8)),
                ('author_id', fields.BigIntField(null=True)),
                ('author_role', fields.CharEnumField(description='BUYER: BUYER\nMERCHANT: MERCHANT\nSTAFF: STAFF\nSYSTEM: SYSTEM', enum_type=AuthorRole, max_length=10)),
                ('body', fields.TextField(default='', unique=False)),
                ('status', fields.CharEnumField(description='OPEN: OPEN\nWAITING_ON_MERCHANT: WAITING_ON_MERCHANT\nWAITING_ON_BUYER: WAITING_ON_BUYER\nESCALATED: ESCALATED\nRESOLVED: RESOLVED\nCLOSED: CLOSED', enum_type=TicketStatus, max_length=24)),
                ('at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'ticket_entry', 'app': 'kameng', 'indexes': [Index(fields=['ticket_id', 'id'])], 'pk_attr': 'id', 'table_description': "One line of a ticket's history: a message, or a status change (``status`` is the"},
            bases=['Model'],
        ),
    ]
