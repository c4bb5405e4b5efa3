"""Spark over the Cassandra tables, for data engineers and the ranking job's training set (docs/analytics.md)."""
