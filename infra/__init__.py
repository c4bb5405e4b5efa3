"""Local development stack: Cassandra, Kafka and Redis without Docker, plus the app processes.

Entry point: `photos-stack` (infra.stack:main). Production notes live in infra/production/.
"""


class StackError(Exception):
    """A stack operation failed; the message says why and which log to read."""
