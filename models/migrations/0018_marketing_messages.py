from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('kameng', '0017_campaigns')]

    initial = False

    operations = [
        ops.AddField(
            model_name='User',
            name='marketing',
            field=fields.BooleanField(default=True),
        ),
    ]
