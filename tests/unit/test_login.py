"""Login without I/O: a name no account can hold is a wrong username, not a query Cassandra refuses."""

from __future__ import annotations

import pytest
from cassandra import InvalidRequest

from app.auth import Passwords
from app.errors import Unauthorized
from app.users.service import UserService


class Users:
    """The users repository as Cassandra answers it: an empty partition key is an error, not a miss."""

    async def credentials(self, username: str):
        if not username:
            raise InvalidRequest("Key may not be empty")
        return None


def login_service() -> UserService:
    return UserService(
        users=Users(), follows=None, sessions=None, passwords=Passwords(1, 8192), events=None, feed_cache=None,
        profiles=None, ids=None, cursors=None, max_following=0,
    )


@pytest.mark.parametrize("username", ["", "   ", "ab", "not a name"])
async def test_a_name_no_account_can_hold_is_wrong_credentials(username):
    with pytest.raises(Unauthorized) as err:
        await login_service().login(username, "x")
    assert err.value.code == "invalid_credentials"
