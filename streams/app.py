"""The Faust app: one factory that builds it from settings and registers every agent.

Every agent gets the process's `Wiring` (app/wiring.py) and takes the storage, caches and publishers it
needs from there; the search writer the search, follow and hashtag agents share is made here first, so
the order the agents are registered in does not matter."""

from __future__ import annotations

import faust

from app.client_security import faust_credentials
from app.settings import Settings
from app.wiring import Wiring
from streams import (
    affinity,
    comment_counts,
    fanout,
    follow_graph,
    like_counts,
    media_sweep,
    outbox,
    post_counts,
    ranking_log,
    story_tray,
    story_views,
    trending,
)
from streams import hashtag_counts as hashtag_count_agent
from streams import notifications as notification_agent
from streams import search_index as search_agents


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.streams_app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        broker_credentials=faust_credentials(settings),  # SASL and/or TLS (app/client_security.py)
        store="memory://",  # no agent keeps state in Faust tables: all state lives in Cassandra
        topic_partitions=settings.kafka_topic_partitions,
        # the topics faust declares itself (the leader election's) replicated as photos-migrate's are: on a
        # cluster a broker's loss must not take the trending and sweep timers' leader with it
        topic_replication_factor=settings.kafka_replication_factor,
        web_enabled=False,
        autodiscover=False,
        producer_acks=-1,
        broker_commit_every=100,
        broker_commit_interval=1.0,
        broker_session_timeout=settings.streams_session_timeout_s,
    )
    wiring = Wiring(settings)
    search = search_agents.SearchWriter(wiring)
    search_agents.register(app, settings, wiring, search)
    follow_graph.register(app, settings, wiring, search)
    hashtag_count_agent.register(app, settings, wiring, search)
    for agent in (post_counts, fanout, media_sweep, outbox, like_counts, affinity, comment_counts, notification_agent,
                  trending, story_tray, story_views, ranking_log):
        agent.register(app, settings, wiring)
    unknown = sorted(set(settings.streams_attempts_by_agent()) - set(app.agents))
    if unknown:  # a misspelt name would silently keep the default limit
        raise ValueError(f"PHOTOS_STREAMS_MAX_ATTEMPTS_BY_AGENT names no agent: {', '.join(unknown)} "
                         f"(the agents: {', '.join(sorted(app.agents))})")
    return app
