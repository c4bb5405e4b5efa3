from app.storage.cassandra import make_cluster
from app.storage.migrate import load_migrations, migrate


def test_running_the_migrations_again_applies_nothing_and_keeps_the_record(migrated):
    cluster = make_cluster(migrated)
    try:
        session = cluster.connect()
        assert migrate(session, migrated, migrated.cassandra_keyspace, load_migrations()) == []
        recorded = {row.version for row in session.execute("SELECT version FROM schema_migrations")}
    finally:
        cluster.shutdown()
    assert recorded == {m.version for m in load_migrations()}
