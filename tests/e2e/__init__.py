"""End-to-end tests: HTTP against API and stream worker processes the session starts.

    conftest.py       fixtures: the session's API and stream worker, `http`, a fresh `account`
    client/           every helper that calls the API on a test's behalf, one module per domain
    stored.py         what tests read straight from Cassandra (fan-out rows, celebrity marks)
    processes.py      starting API and worker processes, the session's and ones with settings of their own
    private_stack.py  a whole stack of its own (servers included), for the tests that kill its servers
    write_load.py     the crash tests' write load, its ledger and the audit of that ledger
"""
