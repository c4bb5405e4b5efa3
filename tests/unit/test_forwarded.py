"""The client's address behind load balancers: X-Forwarded-For believed only from PHOTOS_TRUSTED_PROXIES."""

from __future__ import annotations

from unittest.mock import Mock

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from app.context import TRUSTED_PROXIES, client_address
from app.forwarded import TrustedProxies
from app.settings import Settings

BALANCERS = TrustedProxies(["10.0.0.0/8", "2001:db8:ff::/48"])


@pytest.mark.parametrize(("peer", "forwarded_for", "client"), [
    # a peer that is no trusted proxy is the client, whatever its header says
    ("203.0.113.7", ["198.51.100.1"], "203.0.113.7"),
    ("203.0.113.7", [], "203.0.113.7"),
    # one balancer: the address it appended
    ("10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
    # the client wrote an entry of its own before the balancer appended the real one: the right-most wins
    ("10.0.0.2", ["1.2.3.4, 198.51.100.1"], "198.51.100.1"),
    # a chain of trusted proxies is walked past, right to left
    ("10.0.0.2", ["1.2.3.4, 198.51.100.1, 10.1.1.1, 10.2.2.2"], "198.51.100.1"),
    # several header lines are one list, in order
    ("10.0.0.2", ["1.2.3.4, 198.51.100.1", "10.1.1.1"], "198.51.100.1"),
    # every hop trusted (a health check from inside): the left-most
    ("10.0.0.2", ["10.9.9.9, 10.1.1.1"], "10.9.9.9"),
    # a balancer that forwarded no header: itself
    ("10.0.0.2", [], "10.0.0.2"),
    ("10.0.0.2", [""], "10.0.0.2"),
    # an entry that is not an address stops the walk at the trusted proxy right of it
    ("10.0.0.2", ["198.51.100.1, unknown"], "10.0.0.2"),
    ("10.0.0.2", ["198.51.100.1, 999.1.1.1, 10.1.1.1"], "10.1.1.1"),
    ("10.0.0.2", ["198.51.100.1, not an address at all"], "10.0.0.2"),
    ("10.0.0.2", ["garbage, 198.51.100.1"], "198.51.100.1"),  # left of the client: never read
    # empty list elements are ignored (RFC 9110 list syntax)
    ("10.0.0.2", ["198.51.100.1, , 10.1.1.1,"], "198.51.100.1"),
    # ports some proxies append are dropped
    ("10.0.0.2", ["198.51.100.1:41234"], "198.51.100.1"),
    ("10.0.0.2", ["[2001:db8:1:2::9]:443"], "2001:db8:1:2::9"),
    # IPv6, and IPv4 peers seen on a dual-stack socket
    ("2001:db8:ff:1::5", ["2001:db8:1:2::9"], "2001:db8:1:2::9"),
    ("::ffff:10.0.0.2", ["198.51.100.1"], "198.51.100.1"),
    ("10.0.0.2", ["::ffff:198.51.100.1"], "198.51.100.1"),
    # no peer address (a Unix socket): unknown, the header is not believed
    (None, ["198.51.100.1"], None),
])
def test_the_client_is_the_right_most_address_that_is_no_trusted_proxy(peer, forwarded_for, client):
    assert BALANCERS.client_of(peer, forwarded_for) == client


def test_without_trusted_proxies_the_header_is_never_read():
    assert TrustedProxies([]).client_of("10.0.0.2", ["198.51.100.1"]) == "10.0.0.2"


def test_trusted_proxies_are_networks_and_a_wrong_one_names_the_variable():
    assert Settings.from_env({}).trusted_proxies == ()
    settings = Settings.from_env({"PHOTOS_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7, 2001:db8::/32"})
    assert settings.trusted_proxies == ("10.0.0.0/8", "192.168.1.7", "2001:db8::/32")
    for wrong in ("10.0.0.0/33", "10.0.0.1/8", "balancer.internal", "10.0.0.0/8,*"):
        with pytest.raises(ValueError, match="PHOTOS_TRUSTED_PROXIES"):
            Settings.from_env({"PHOTOS_TRUSTED_PROXIES": wrong})


def request_from(peer: str, trusted: list[str], headers: dict[str, str]) -> web.Request:
    app = web.Application()
    app[TRUSTED_PROXIES] = TrustedProxies(trusted)
    transport = Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (peer, 50000) if name == "peername" else default
    return make_mocked_request("POST", "/v1/sessions", headers=headers, app=app, transport=transport)


def test_the_rate_limit_subject_of_a_request_is_its_clients():
    forwarded = {"X-Forwarded-For": "2001:db8:1:2::9"}
    assert client_address(request_from("10.0.0.2", ["10.0.0.0/8"], forwarded)) == "2001:db8:1:2::/64"
    assert client_address(request_from("10.0.0.2", [], forwarded)) == "10.0.0.2"
    assert client_address(request_from("203.0.113.7", ["10.0.0.0/8"], forwarded)) == "203.0.113.7"
