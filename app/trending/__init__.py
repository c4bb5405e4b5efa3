"""Trending hashtags (issue 6): scoring of distinct-author activity against each tag's baseline."""
