from tortoise import migrations
from tortoise.migrations import operations as ops
from orjson import loads
from tortoise.fields.data import JSON_DUMPS
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('kameng', '0014_lifecycle')]

    initial = False

    operations = [
        ops.CreateModel(
            name='RecommendationList',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('owner', fields.CharField(unique=True, max_length=80)),
                ('model_version', fields.CharField(max_length=40)),
                ('items', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('posts', fields.JSONField(default=list, encoder=JSON_DUMPS, decoder=loads)),
                ('updated_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'recommendation_list', 'app': 'kameng', 'pk_attr': 'id', 'table_description': "One owner's ranked items: ``items`` is a list of [product id, score, reason kind, reason"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='RecommendationModel',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('version', fields.CharField(unique=True, max_length=40)),
                ('trained_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
                ('interactions', fields.IntField(default=0)),
                ('users', fields.IntField(default=0)),
                ('items', fields.IntField(default=0)),
                ('lam', fields.FloatField(default=0.0)),
                ('half_life_events', fields.FloatField(default=0.0)),
                ('train_seconds', fields.FloatField(default=0.0)),
                ('lists', fields.IntField(default=0)),
            ],
            options={'table': 'recommendation_model', 'app': 'kameng', 'pk_attr': 'id', 'table_description': 'One training run: what it learnt from and how long it took.'},
            bases=['Model'],
        ),
    ]
