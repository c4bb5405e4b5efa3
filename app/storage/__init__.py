"""The table owners: one module per group of Cassandra tables (cql/TABLES.md), and the migrations."""
