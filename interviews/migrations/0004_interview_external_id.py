from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('interviews', '0003_session_leases'),
    ]

    operations = [
        migrations.AddField(
            model_name='interview',
            name='external_id',
            field=models.UUIDField(blank=True, editable=False, help_text="The interview's id in Supabase, when it comes from there.", null=True, unique=True),
        ),
    ]
