"""The cardholder search's indexes (accesscontrol/search.py explains the search).

SQLite: an FTS5 table of last and first names with the trigram tokenizer, filled
from the cardholders and kept current by triggers, and an index on
``lower(email)``; reversed, they are dropped. PostgreSQL has what it needs in the
trigram index of 0006, and other databases get nothing: the search still works
there, reading the table.
"""

from django.db import migrations


def create(apps, schema_editor):
    from accesscontrol import search

    search.install(schema_editor.connection)


def drop(apps, schema_editor):
    from accesscontrol import search

    search.uninstall(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [("accesscontrol", "0015_cardholder_photos")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
