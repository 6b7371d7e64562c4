from tortoise import migrations
from tortoise.migrations import operations as ops
from models.lifecycle.churn import RiskBand
from models.lifecycle.segments import Stage
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('kameng', '0013_claims')]

    initial = False

    operations = [
        ops.CreateModel(
            name='BuyerRfm',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user_id', fields.BigIntField(unique=True)),
                ('recency_days', fields.IntField()),
                ('frequency', fields.IntField()),
                ('monetary', fields.DecimalField(max_digits=14, decimal_places=2)),
                ('r_score', fields.SmallIntField(default=0)),
                ('f_score', fields.SmallIntField(default=0)),
                ('m_score', fields.SmallIntField(default=0)),
                ('first_purchase_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_purchase_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('stage', fields.CharEnumField(description='NEW: NEW\nACTIVE: ACTIVE\nSILENT: SILENT\nLAPSED: LAPSED', enum_type=Stage, max_length=16)),
                ('segment_rule_id', fields.BigIntField(null=True)),
                ('computed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'lifecycle_buyer_rfm', 'app': 'kameng', 'pk_attr': 'id', 'table_description': "A buyer's recency (days since the last purchase), frequency (purchases) and monetary"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ChurnModel',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('r', fields.FloatField()),
                ('alpha', fields.FloatField()),
                ('a', fields.FloatField()),
                ('b', fields.FloatField()),
                ('p', fields.FloatField(null=True)),
                ('q', fields.FloatField(null=True)),
                ('gamma', fields.FloatField(null=True)),
                ('buyers', fields.IntField()),
                ('fitted_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'lifecycle_churn_model', 'app': 'kameng', 'pk_attr': 'id', 'table_description': 'One fit of BG/NBD (time in weeks) and Gamma-Gamma, on ``buyers`` buyers.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ChurnScore',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('user_id', fields.BigIntField(unique=True)),
                ('p_alive', fields.FloatField()),
                ('expected_purchases_90d', fields.FloatField()),
                ('expected_spend_90d', fields.DecimalField(max_digits=14, decimal_places=2)),
                ('visits_recent', fields.IntField(default=0)),
                ('visits_before', fields.IntField(default=0)),
                ('abandoned_checkouts', fields.IntField(default=0)),
                ('complaints', fields.IntField(default=0)),
                ('signs', fields.CharField(default='', max_length=200)),
                ('band', fields.CharEnumField(description='LOW: LOW\nMEDIUM: MEDIUM\nHIGH: HIGH', enum_type=RiskBand, max_length=8)),
                ('model_id', fields.BigIntField(null=True)),
                ('scored_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'lifecycle_churn_score', 'app': 'kameng', 'pk_attr': 'id', 'table_description': "A buyer's churn risk as of ``scored_at``: the model's figures over the next 90 days,"},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SegmentRule',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key', fields.CharField(unique=True, max_length=64)),
                ('name', fields.CharField(max_length=80)),
                ('description', fields.CharField(default='', max_length=500)),
                ('benefits', fields.CharField(default='', max_length=500)),
                ('priority', fields.IntField(default=100)),
                ('active', fields.BooleanField(default=True)),
                ('stage', fields.CharEnumField(null=True, description='NEW: NEW\nACTIVE: ACTIVE\nSILENT: SILENT\nLAPSED: LAPSED', enum_type=Stage, max_length=16)),
                ('recency_days_min', fields.IntField(null=True)),
                ('recency_days_max', fields.IntField(null=True)),
                ('frequency_min', fields.IntField(null=True)),
                ('frequency_max', fields.IntField(null=True)),
                ('monetary_min', fields.DecimalField(null=True, max_digits=14, decimal_places=2)),
                ('monetary_max', fields.DecimalField(null=True, max_digits=14, decimal_places=2)),
                ('updated_by_id', fields.BigIntField(null=True)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'lifecycle_segment_rule', 'app': 'kameng', 'pk_attr': 'id', 'table_description': 'A named segment: a buyer is in the first active rule (lowest ``priority``) whose every'},
            bases=['Model'],
        ),
    ]
