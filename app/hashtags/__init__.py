"""Hashtag pages: the posts carrying a tag, newest first."""
