from django.db import migrations


def create_default_group(apps, schema_editor):
    ResourceGroup = apps.get_model("configuration", "ResourceGroup")
    ResourceGroup.objects.get_or_create(
        name="default", defaults={"description": "Used when a node names no resource group."}
    )


class Migration(migrations.Migration):
    dependencies = [("configuration", "0001_initial")]
    operations = [migrations.RunPython(create_default_group, migrations.RunPython.noop)]
