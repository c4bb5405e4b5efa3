"""The CQL schema: numbered migrations (migrations/*.cql) and the table documentation (TABLES.md)."""
