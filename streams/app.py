"""The Faust app: one factory that builds it from settings and registers every agent."""

from __future__ import annotations

import faust

from app.settings import Settings
from streams import (
    affinity,
    comment_counts,
    fanout,
    follow_graph,
    like_counts,
    media_sweep,
    post_counts,
    story_tray,
    story_views,
    trending,
)
from streams import hashtag_counts as hashtag_count_agent
from streams import notifications as notification_agent
from streams import search_index as search_agents
from streams.resources import Resources


def create_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.streams_app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",  # no agent keeps state in Faust tables: all state lives in Cassandra
        topic_partitions=settings.kafka_topic_partitions,
        web_enabled=False,
        autodiscover=False,
        producer_acks=-1,
        broker_commit_every=100,
        broker_commit_interval=1.0,
        broker_session_timeout=settings.streams_session_timeout_s,
    )
    resources = Resources(settings)
    search = search_agents.register(app, settings, resources)
    follow_graph.register(app, settings, resources, search)
    post_counts.register(app, settings, resources)
    fanout.register(app, settings, resources)
    media_sweep.register(app, settings, resources)
    like_counts.register(app, settings, resources)
    affinity.register(app, settings, resources)
    comment_counts.register(app, settings, resources)
    notification_agent.register(app, settings, resources)
    trending.register(app, settings, resources)
    hashtag_count_agent.register(app, settings, resources, search)
    story_tray.register(app, settings, resources)
    story_views.register(app, settings, resources)
    return app
