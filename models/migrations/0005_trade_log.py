from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('kameng', '0004_delivery_promises')]

    initial = False

    operations = [
        ops.CreateModel(
            name='TradeEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('order_id', fields.BigIntField(null=True)),
                ('leaf', fields.TextField(unique=False)),
            ],
            options={'table': 'trade_event', 'app': 'kameng', 'pk_attr': 'id', 'table_description': 'A leaf waiting to be appended: written with the state change, deleted when appended.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TradeHead',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('tree_size', fields.BigIntField(db_index=True)),
                ('root_hash', fields.CharField(max_length=64)),
                ('timestamp', fields.CharField(max_length=40)),
                ('signature', fields.CharField(max_length=100)),
            ],
            options={'table': 'trade_head', 'app': 'kameng', 'pk_attr': 'id', 'table_description': 'A signed tree head. ``timestamp`` is the exact ISO text that was signed.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TradeLeaf',
            fields=[
                ('index', fields.BigIntField(generated=False, primary_key=True, unique=True, db_index=True)),
                ('event_id', fields.BigIntField(unique=True)),
                ('order_id', fields.BigIntField(null=True, db_index=True)),
                ('leaf', fields.TextField(unique=False)),
                ('leaf_hash', fields.CharField(max_length=64)),
            ],
            options={'table': 'trade_leaf', 'app': 'kameng', 'pk_attr': 'index', 'table_description': 'An appended leaf. ``event_id`` is unique: an event is appended exactly once.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TradeNode',
            fields=[
                ('key', fields.BigIntField(generated=False, primary_key=True, unique=True, db_index=True)),
                ('hash', fields.BinaryField()),
            ],
            options={'table': 'trade_node', 'app': 'kameng', 'pk_attr': 'key', 'table_description': 'The hash of a complete aligned subtree, keyed by kameng.merkle.node_key(level, position).'},
            bases=['Model'],
        ),
    ]
