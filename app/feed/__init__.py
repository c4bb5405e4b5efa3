"""The home feed: fan-out writes, the pull of celebrities, ranking, cache and paging."""
