"""Helpers only tests use: `polling` (wait for an asynchronous effect with a deadline) and `tcp_proxy`
(a connection a test can cut). What the benchmarks need too lives in the installed packages:
processes and ports in infra/procs.py, generated images in loadtest/images.py."""
