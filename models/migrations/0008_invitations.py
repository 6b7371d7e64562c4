from tortoise import migrations
from tortoise.migrations import operations as ops
from models.loyalty.invitations import ReferralStatus
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('kameng', '0007_tickets')]

    initial = False

    operations = [
        ops.CreateModel(
            name='InviteCode',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user_id', fields.BigIntField(unique=True)),
                ('code', fields.CharField(unique=True, max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'invite_code', 'app': 'kameng', 'pk_attr': 'id', 'table_description': 'One code per user, made the first time they ask for it.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Referral',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('inviter_id', fields.BigIntField(db_index=True)),
                ('invitee_id', fields.BigIntField(unique=True)),
                ('status', fields.CharEnumField(default=ReferralStatus.PENDING, description='PENDING: PENDING\nREWARDED: REWARDED\nREFUSED: REFUSED', enum_type=ReferralStatus, max_length=16)),
                ('refusal', fields.CharField(default='', max_length=40)),
                ('ip', fields.CharField(default='', max_length=64)),
                ('device_id', fields.CharField(default='', max_length=64)),
                ('order_id', fields.BigIntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('rewarded_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'referral', 'app': 'kameng', 'indexes': [Index(fields=['inviter_id', 'status', 'rewarded_at'])], 'pk_attr': 'id', 'table_description': 'Who invited whom. ``invitee_id`` is unique: an account is invited at most once, and the'},
            bases=['Model'],
        ),
    ]
