from tortoise import migrations
from tortoise.migrations import operations as ops
from models.discovery.search import SearchKind
from models.discovery.trending import TrendWindow
from tortoise import fields
from tortoise.indexes import Index

# The full-text side of the search index, which Tortoise has no field for (see
# models/discovery/search.py). One statement per call: no semicolons.
_SQLITE = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(title, body, tokenize = 'unicode61')",
)
_POSTGRES = (
    "CREATE INDEX IF NOT EXISTS search_document_terms ON search_document USING gin "
    "(array_to_tsvector(array_remove(string_to_array(title_terms || ' ' || body_terms, ' '), '')))",
)


async def full_text_forward(apps, schema_editor):
    dialect = schema_editor.client.capabilities.dialect
    for sql in _POSTGRES if dialect == "postgres" else _SQLITE if dialect == "sqlite" else ():
        await schema_editor.client.execute_script(sql)


async def full_text_backward(apps, schema_editor):
    dialect = schema_editor.client.capabilities.dialect
    if dialect == "sqlite":
        await schema_editor.client.execute_script("DROP TABLE IF EXISTS search_fts")


class Migration(migrations.Migration):
    dependencies = [('kameng', '0009_gifts_and_friend_pay')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SearchDocument',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('kind', fields.CharEnumField(description='PRODUCT: PRODUCT\nPOST: POST', enum_type=SearchKind, max_length=16)),
                ('ref_id', fields.BigIntField()),
                ('title_terms', fields.TextField(default='', unique=False)),
                ('body_terms', fields.TextField(default='', unique=False)),
                ('indexed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'search_document', 'app': 'kameng', 'unique_together': (('kind', 'ref_id'),), 'pk_attr': 'id', 'table_description': 'A product (title, then description, shop and category names) or a post (title, then'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='TrendingTerm',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('window', fields.CharEnumField(description='HOUR: HOUR\nDAY: DAY\nWEEK: WEEK', enum_type=TrendWindow, max_length=8)),
                ('term', fields.CharField(max_length=64)),
                ('count', fields.IntField()),
                ('previous_count', fields.IntField()),
                ('content_count', fields.IntField()),
                ('rise', fields.FloatField()),
                ('position', fields.IntField()),
                ('computed_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'trending_term', 'app': 'kameng', 'unique_together': (('window', 'term'),), 'indexes': [Index(fields=['window', 'position'])], 'pk_attr': 'id', 'table_description': 'One rising term of one window at ``computed_at``. ``count`` counts the posts, comments'},
            bases=['Model'],
        ),
        ops.RunPython(full_text_forward, full_text_backward),
    ]
