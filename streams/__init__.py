"""Stream workers: the Faust app and its agents, one module per concern."""
