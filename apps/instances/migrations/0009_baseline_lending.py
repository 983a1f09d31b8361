# A baseline at risk lends its priority to the instances on its path (SPEC 7.3): the
# lent priority and the lending baseline, the priority the dispatcher starts an instance
# at (a stored generated column, the greater of the two), and the claim's index on it.

import django.db.models.deletion
import django.db.models.functions.comparison
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("baselines", "0001_initial"),
        ("instances", "0008_attempt_runtime"),
    ]

    operations = [
        migrations.AddField(
            model_name="instance",
            name="lent_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="baselines.baseline",
            ),
        ),
        migrations.AddField(
            model_name="instance",
            name="lent_priority",
            field=models.PositiveSmallIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="instance",
            name="dispatch_priority",
            field=models.GeneratedField(
                db_persist=True,
                expression=django.db.models.functions.comparison.Greatest(
                    "priority",
                    django.db.models.functions.comparison.Coalesce(
                        "lent_priority",
                        models.Value(0),
                        output_field=models.PositiveSmallIntegerField(),
                    ),
                ),
                output_field=models.PositiveSmallIntegerField(),
            ),
        ),
        migrations.RemoveIndex(
            model_name="instance",
            name="instance_pending_group_idx",
        ),
        migrations.AddIndex(
            model_name="instance",
            index=models.Index(
                condition=models.Q(("state", "pending")),
                fields=["resource_group", "-dispatch_priority", "scheduled_at", "id"],
                name="instance_pending_group_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="instance",
            index=models.Index(
                condition=models.Q(("lent_by__isnull", False)),
                fields=["lent_by"],
                name="instance_lent_idx",
            ),
        ),
    ]
