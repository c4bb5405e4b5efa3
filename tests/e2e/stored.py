"""What e2e tests read straight from Cassandra, to see what an agent wrote where no API shows it."""

from __future__ import annotations

from tests.e2e.client.users import Account


async def pushed(cass, reader: Account, post_id: str) -> bool:
    """Fan-out wrote the post into the reader's feed_items."""
    row = await cass.one(
        "SELECT post_id FROM feed_items WHERE user_id = %s AND post_id = %s", (int(reader.id), int(post_id))
    )
    return row is not None


async def is_celebrity(cass, account: Account) -> bool:
    """The follow-graph agent has marked the account a celebrity (its posts are pulled, not pushed)."""
    return await cass.one("SELECT user_id FROM celebrities WHERE user_id = %s", (int(account.id),)) is not None
