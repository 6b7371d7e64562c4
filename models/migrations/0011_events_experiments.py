from tortoise import migrations
from tortoise.migrations import operations as ops
from models.discovery.events import EventKind
from models.lifecycle.experiments import ExperimentKind
from models.outbox import OutboxKind
from orjson import loads
from tortoise.fields.base import OnDelete
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('kameng', '0010_search_and_trending')]

    initial = False

    operations = [
        ops.CreateModel(
            name='DailyEventAggregate',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('day', fields.DateField()),
                ('kind', fields.CharEnumField(description='PRODUCT_VIEW: PRODUCT_VIEW\nPOST_VIEW: POST_VIEW\nSEARCH: SEARCH\nRECOMMENDATION_IMPRESSION: RECOMMENDATION_IMPRESSION\nRECOMMENDATION_CLICK: RECOMMENDATION_CLICK\nPAGE_VISIT: PAGE_VISIT\nORDER_PAID: ORDER_PAID\nORDER_DELIVERED: ORDER_DELIVERED\nORDER_REFUNDED: ORDER_REFUNDED\nPOST_CREATED: POST_CREATED\nPOST_LIKED: POST_LIKED\nCOMMENTED: COMMENTED\nFOLLOWED: FOLLOWED\nCIRCLE_JOINED: CIRCLE_JOINED\nCHECKED_IN: CHECKED_IN', enum_type=EventKind, max_length=32)),
                ('product_id', fields.BigIntField(default=0)),
                ('post_id', fields.BigIntField(default=0)),
                ('events', fields.IntField(default=0)),
                ('users', fields.IntField(default=0)),
                ('devices', fields.IntField(default=0)),
                ('amount', fields.DecimalField(default=0, max_digits=14, decimal_places=2)),
            ],
            options={'table': 'behaviour_event_daily', 'app': 'kameng', 'unique_together': (('day', 'kind', 'product_id', 'post_id'),), 'pk_attr': 'id', 'table_description': 'What raw events leave behind once the retention sweep deletes them: per UTC day, kind,'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Experiment',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key', fields.CharField(unique=True, max_length=64)),
                ('kind', fields.CharEnumField(default=ExperimentKind.EXPERIMENT, description='FLAG: FLAG\nEXPERIMENT: EXPERIMENT', enum_type=ExperimentKind, max_length=16)),
                ('description', fields.CharField(default='', max_length=300)),
                ('arms', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('enabled', fields.BooleanField(default=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'experiment', 'app': 'kameng', 'pk_attr': 'id', 'table_description': 'A flag or an experiment, by its stable key (the hash seed).'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ExperimentExposure',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('experiment', fields.ForeignKeyField('kameng.Experiment', source_field='experiment_id', db_constraint=True, to_field='id', related_name='exposures', on_delete=OnDelete.CASCADE)),
                ('unit', fields.CharField(max_length=80)),
                ('user_id', fields.BigIntField(null=True, db_index=True)),
                ('device_id', fields.CharField(null=True, max_length=64)),
                ('arm', fields.CharField(max_length=32)),
                ('exposed_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'experiment_exposure', 'app': 'kameng', 'unique_together': (('experiment', 'unit'),), 'pk_attr': 'id', 'table_description': 'The first time a unit saw an arm. ``unit`` is ``user:<id>`` or ``device:<id>``, and a'},
            bases=['Model'],
        ),
        ops.AlterField(
            model_name='OutboxEntry',
            name='kind',
            field=fields.CharEnumField(description='EVENT: EVENT\nJOB: JOB\nTRACK: TRACK', enum_type=OutboxKind, max_length=8),
        ),
        ops.AddField(
            model_name='User',
            name='personalisation',
            field=fields.BooleanField(default=True),
        ),
    ]
