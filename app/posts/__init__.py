"""Posts: creation with the media pipeline, reading, deleting, and per-user timelines."""
