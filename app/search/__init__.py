"""Prefix search of users and hashtags, best first, from an index in Redis (docs/search.md)."""
