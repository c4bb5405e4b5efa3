"""State the load shapes (loadtest/shapes.py) share with the scenarios (loadtest/locustfile.py).

Locust imports a locustfile by path, under a module name of its own; both files import this module
by its package name, so they see the same object.
"""

from __future__ import annotations

# a task name: every user runs only that task (the per-route cost phase of `loadtest.run`); None: the mix
focus: str | None = None
