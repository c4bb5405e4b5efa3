"""Notifications: aggregated per recipient, listed by the API, pushed over WebSocket (docs/notifications.md)."""
