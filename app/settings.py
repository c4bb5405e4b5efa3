"""Every setting of the system, read once from environment variables.

Each setting is `PHOTOS_<NAME>` in the environment; the defaults run everything on
127.0.0.1 as `photos-stack up` starts it. Nothing else in the code base reads
`os.environ` for configuration: it asks for a `Settings` object.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
COMMITLOG_SYNC_MODES = ("batch", "group", "periodic")
KAFKA_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
KAFKA_SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
DEV_SECRET_KEY = "local-development-secret"
FEED_RANKERS = ("formula", "model", "split")


def _default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "photos-stack")


@dataclass(frozen=True)
class Settings:
    # --- API process -------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    api_workers: int = 0  # processes sharing the port (SO_REUSEPORT); 0: one per core
    max_json_body_bytes: int = 64 * 1024
    # a request body (JSON or an upload) is cut off with 408 and its connection closed when the client sends
    # nothing for this long, or has not finished it within body_read_deadline_s: a client that trickles or
    # stalls a body holds a connection, not the process. Per read, so a large upload on a slow link goes on
    # as long as bytes keep coming
    body_read_idle_timeout_s: float = 15.0
    body_read_deadline_s: float = 300.0
    # the ops listener: GET /metrics (every worker process summed) and the detailed GET /readyz, for
    # Prometheus and operators; keep it off the public network (the public port serves /healthz and a
    # detail-free /readyz only). Shared by the processes of `photos-api --workers N`; 0: not served
    ops_host: str = "127.0.0.1"
    ops_port: int = 8081
    public_base_url: str = ""  # how clients reach the API; empty: http://<api_host>:<api_port>
    # the 13-bit shard of this process's ids (app/ids.py). -1: derived from host name and pid, which
    # is fine on one host; with many hosts give every process its own (photos-api --workers N takes
    # N consecutive shards from this one)
    id_shard: int = -1
    # signs cursors (app/cursors.py); set a long random value in production and share it between API
    # processes. The API refuses to start with the development default unless allow_dev_secret says so
    secret_key: str = DEV_SECRET_KEY
    # a second key cursors are verified with, never signed with: the key before a rotation, so the cursors
    # clients hold stay valid while it is set (docs/operations.md)
    secret_key_previous: str = ""
    # lets the API sign with the development default, which anyone can read here: photos-stack and
    # infra/docker-compose.yml set it (the tests use a key of their own), production never does
    allow_dev_secret: bool = False

    # --- Cassandra ---------------------------------------------------------
    cassandra_hosts: tuple[str, ...] = ("127.0.0.1",)
    cassandra_port: int = 9042
    cassandra_local_dc: str = "datacenter1"
    cassandra_keyspace: str = "photos"
    # CQL replication map for CREATE KEYSPACE. Production: NetworkTopologyStrategy, RF 3 per DC.
    cassandra_replication: str = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    # LOCAL_QUORUM is the production choice with RF 3; with RF 1 it is the same as ONE.
    cassandra_consistency: str = "LOCAL_QUORUM"
    cassandra_request_timeout_s: float = 10.0
    cassandra_max_in_flight: int = 256  # per process, bounds the driver queue
    # how long a request waits for one of those slots before it is shed with 503 + Retry-After (the query
    # itself then has cassandra_request_timeout_s): under overload a client hears at once instead of queueing
    cassandra_slot_wait_s: float = 1.0
    cassandra_connect_timeout_s: float = 30.0
    cassandra_reconnect_max_delay_s: float = 5.0  # longest wait between attempts to reach a node that went away

    # --- Redis -------------------------------------------------------------
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_timeout_s: float = 0.5
    # connections per client (one client per process): a command beyond them waits up to redis_timeout_s for one
    # to free up instead of failing at once
    redis_max_connections: int = 256

    # --- Kafka -------------------------------------------------------------
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_topic_partitions: int = 8
    kafka_replication_factor: int = 1  # production: 3, with min.insync.replicas=2 on the brokers
    kafka_topic_prefix: str = "photos."  # tests use their own prefix so they never feed a dev system
    kafka_send_timeout_s: float = 10.0
    streams_app_id: str = "photos-streams"
    streams_web_port: int = 0  # 0: the workers serve no HTTP; photos-stack then checks the process is alive
    # photos-streams serves Prometheus metrics (docs/metrics.md) on this port of ops_host; 0: not served.
    # photos-stack gives its worker 9464 (`photos-streams --metrics-port` overrides this setting)
    streams_metrics_port: int = 0
    # how long Kafka waits for a silent worker before giving its partitions to the others
    streams_session_timeout_s: float = 30.0
    # an agent's batch that fails for another reason than a dependency's outage (outages are retried for as
    # long as they last) is tried this many times, then its events one at a time as often; an event that
    # still fails goes to its topic's dead-letter topic (docs/reliability.md)
    streams_max_attempts: int = 5
    # per-agent limits instead of streams_max_attempts, `agent=attempts` comma-separated (`feed_fanout=10`)
    streams_max_attempts_by_agent: tuple[str, ...] = ()

    # --- Credentials and TLS (docs/operations.md#credentials-and-tls) ------
    # Every default is "none": the local stack runs without authentication unless stack_auth says so.
    # Passwords are left out of the settings' repr, so a logged Settings never shows one.
    # Cassandra: PasswordAuthenticator credentials (empty username: no authentication), TLS to every node
    # when cassandra_tls is on, verified against cassandra_tls_ca_file (empty: the system's CAs)
    cassandra_username: str = ""
    cassandra_password: str = field(default="", repr=False)
    cassandra_tls: bool = False
    cassandra_tls_ca_file: str = ""
    cassandra_tls_cert_file: str = ""  # a client certificate, for nodes with require_client_auth
    cassandra_tls_key_file: str = ""
    cassandra_tls_verify_hostname: bool = True  # the node's certificate must name the address connected to
    # Redis: an ACL user (empty username with a password: the default user, requirepass). TLS comes with a
    # rediss:// redis_url; the files below are only allowed with one
    redis_username: str = ""
    redis_password: str = field(default="", repr=False)
    redis_tls_ca_file: str = ""
    redis_tls_cert_file: str = ""
    redis_tls_key_file: str = ""
    redis_tls_verify_hostname: bool = True
    # Kafka: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL; SASL with SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_username: str = ""
    kafka_password: str = field(default="", repr=False)
    kafka_tls_ca_file: str = ""  # SSL and SASL_SSL; empty: the system's CAs
    kafka_tls_cert_file: str = ""  # a client certificate (SSL client authentication)
    kafka_tls_key_file: str = ""
    kafka_tls_verify_hostname: bool = True
    # photos-stack runs Cassandra, Redis and Kafka with authentication on, with the credentials above
    # (docs/operations.md#credentials-and-tls)
    stack_auth: bool = False

    # --- Accounts, sessions, rate limits ----------------------------------
    session_ttl_s: int = 30 * 24 * 3600
    # the session cache (docs/accounts.md): a Redis entry lives at most this long (and never past its
    # session), so one a logout could not tombstone (Redis unreachable then) is gone within it
    session_cache_ttl_s: int = 3600
    session_local_ttl_s: float = 5.0  # an in-process entry's longest life, the bound if a revocation is lost
    session_local_max: int = 100_000  # in-process entries per API process (least recently used leave first)
    login_rate_per_username: int = 10  # attempts per window
    login_rate_per_address: int = 60
    register_rate_per_address: int = 20
    rate_window_s: int = 60
    # uploads (posts and stories together) are charged their decoded pixels, read from the image header
    # before the image pool decodes anything: a 7000x7000 PNG (~1.4 s of CPU) costs 49 M, a phone photo
    # 12 M. At least max_image_pixels, or the largest image allowed could never be uploaded
    upload_pixels_per_user: int = 400_000_000  # per rate window: ~33 phone photos, 8 of the largest
    upload_pixels_per_address: int = 2_000_000_000
    follow_rate_per_user: int = 200  # follows and unfollows per rate window
    follow_rate_per_address: int = 1_000
    profile_rate_per_user: int = 30  # PATCH /v1/me per rate window
    profile_rate_per_address: int = 300
    # networks (CIDRs or single addresses) of the load balancers in front of the API: from these peers,
    # X-Forwarded-For names the client whose address the per-address limits count (app/forwarded.py).
    # List the proxies only: a client inside a trusted network can claim any address. Empty: every
    # client is its TCP peer and the header is ignored
    trusted_proxies: tuple[str, ...] = ()
    idempotency_ttl_s: int = 24 * 3600
    # the lease of a pending Idempotency-Key claim, renewed every quarter of it while its request runs: a
    # request that dies frees its key within it (app/idempotency.py)
    idempotency_pending_ttl_s: int = 60
    # argon2id cost; tests may lower it through the environment, never below the library minimum
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19 * 1024
    argon2_threads: int = 2  # hashes computed at once per API process
    # hashes waiting for a thread per process; a login or registration beyond them is answered 503 +
    # Retry-After without hashing, so a burst of logins cannot queue without bound (or past its clients' timeouts)
    argon2_max_waiting: int = 16

    # --- Follow graph -------------------------------------------------------
    max_following: int = 7_500  # bounds the `following` partition (Instagram's own cap)
    followers_per_bucket: int = 100_000  # bounds each `followers` partition

    # --- Home feed (docs/feed.md; cql/TABLES.md) ------------------------------
    # authors with at least this many followers are pulled at read time instead of pushed; they go
    # back to push below 90% of it, so an author near the line does not flip back and forth
    feed_celebrity_followers: int = 10_000
    feed_max_entries: int = 800  # newest pushed entries kept per reader
    feed_ttl_days: int = 30  # the feed horizon: pushed rows expire, pulled posts older are left out
    feed_inactive_after_days: int = 7  # readers idle this long get no pushes; their feed is rebuilt on return
    feed_rank_window: int = 100  # the newest candidates a ranked feed orders; older ones follow by time
    feed_backfill_posts: int = 20  # recent posts copied into a feed on follow and on rebuild
    feed_cache_ttl_s: int = 60  # the cached first page; fan-out invalidates it sooner
    feed_snapshot_ttl_s: int = 6 * 3600  # how long the cursors of a ranked feed stay valid
    feed_fanout_concurrency: int = 128  # feed writes in flight per fan-out worker
    feed_refill_after_s: int = 300  # how often a reader's Redis candidate set is refilled, off the read
    feed_rebuild_wait_ms: int = 1000  # how long a page waits for a missing candidate set's refill

    # --- Feed ranking (docs/ranking.md; cql/TABLES.md) ---------------------------------
    # which ranker orders a ranked feed: "formula" (app/feed/ranking.py), "model" (the promoted LightGBM
    # model, the formula while there is none or it fails), or "split" (the model for the readers whose id
    # hashes below feed_ranker_split_percent, the formula for the rest)
    feed_ranker: str = "formula"
    feed_ranker_split_percent: int = 50
    ranker_poll_s: float = 30.0  # how often an API process looks for a newly promoted model
    # the share of ranked feed snapshots whose served pages are logged as impressions (0 to 1), and the
    # ranking log's partitions per day and its retention (feed_impressions, feed_engagements)
    ranking_impression_sample: float = 0.05
    ranking_log_shards: int = 16
    ranking_log_ttl_days: int = 30
    ranking_label_window_s: int = 86_400  # an engagement this long after an impression labels it

    # --- Object caches (docs/posts.md#caches) ----------------------------------------
    post_cache_ttl_s: int = 6 * 3600  # a cached post, its counts, and a deleted post's tombstone
    user_cache_ttl_s: int = 3600  # a cached profile (username, display name, bio)
    grid_cache_ttl_s: int = 3600  # a user's cached newest grid ids; creates and deletes keep it current
    grid_cache_ids: int = 60  # ids read into a user's cached grid on a miss (it keeps up to twice as many)

    # --- Likes (docs/likes.md; cql/TABLES.md) ----------------------------------
    likes_per_bucket: int = 100_000  # bounds each `post_likers` partition
    like_rate_per_user: int = 600  # likes and unlikes per user per rate window
    like_count_cache_ttl_s: int = 24 * 3600  # the Redis count a like's reply carries
    # how long Redis remembers one user's like or unlike of one post (dedupe of retries, the order of a
    # user's requests, an exact reply count); past it the reply's count may be one off for a batch
    like_membership_ttl_s: int = 900
    like_worker_posts_in_parallel: int = 32  # posts one like worker settles at once (bounds its Cassandra load)

    # --- Comments (docs/comments.md) --------------------------------------------
    max_comment_length: int = 2_200
    comment_rate_per_user: int = 120  # comments per user per rate window
    comment_worker_batch_size: int = 500  # comment events the count worker settles at once (its stream batch)

    # --- Notifications (docs/notifications.md) ----------------------------------
    notification_ttl_days: int = 30
    notification_ws_heartbeat_s: float = 20.0  # WebSocket ping interval
    notification_ws_max_queued: int = 256  # notifications buffered per slow client before it is dropped
    notification_ticket_ttl_s: int = 60  # lifetime of the one-time WebSocket ticket
    notification_ticket_rate_per_user: int = 60  # tickets issued per rate window
    notification_ticket_rate_per_address: int = 600
    notification_ws_max_per_user: int = 10  # a user's open sockets on all API processes; more are refused (429)
    notification_ws_lease_s: float = 60.0  # a socket's place lasts this long past its process's last renewal
    notification_ws_max_per_process: int = 10_000  # open sockets on one API process; more are refused (429)
    notification_max_per_user: int = 1_000  # newest entries kept in a user's list (bounds `notifications`)
    notification_max_actors: int = 10_000  # distinct actors counted per aggregate (bounds `notification_groups`)
    notification_aggregate_window_h: int = 24  # likes, comments, replies, follows aggregate per this window
    notification_bump_interval_s: int = 60  # an aggregate moves to the top of the list at most this often
    notification_max_mentions: int = 20  # mentioned users notified per caption or comment (Instagram's cap)

    # --- Stories (docs/stories.md) -------------------------------------------------
    story_ttl_s: int = 24 * 3600  # a story's life: every row of it is written with this TTL
    story_max_live: int = 100  # live stories per author (Instagram's daily cap); bounds `stories`
    story_rate_per_user: int = 20  # stories posted per user per rate window
    story_view_rate_per_user: int = 1_200  # story views per user per rate window
    story_views_per_bucket: int = 100_000  # bounds each `story_viewers` partition
    story_sweep_interval_s: float = 60.0  # how often a stream worker removes the media of expired stories

    # --- Trending (docs/trending.md) --------------------------------------------
    trending_refresh_s: float = 30.0  # how often a stream worker re-ranks both windows (the freshness)
    trending_baseline_slots: int = 288  # 5-minute slots before the window that make a tag's usual rate
    trending_min_authors: int = 3  # distinct authors a tag needs in the window to be ranked
    trending_ttl_days: int = 3  # every trending key in Redis expires after this

    # --- Search (docs/search.md) ---------------------------------------------------
    # how often a stream worker checks the index: rebuilt from Cassandra when it was lost or a write failed
    search_repair_s: float = 30.0

    # --- Outbox (docs/reliability.md#the-outbox) ----------------------------------
    # a follow, unfollow or comment records the event it owes before its write and clears the record once the
    # event is out; a stream worker publishes the records older than this (app/outbox.py). A comment is
    # answered 201 only if its record was cleared within half of it: keep it well above twice the Cassandra
    # and Kafka timeouts plus the clock skew between hosts
    outbox_grace_s: float = 60.0
    outbox_sweep_interval_s: float = 10.0  # how often a stream worker runs the outbox reconciler

    # --- Media ---------------------------------------------------------------
    media_store: str = "local"  # "local" (a directory served by GET /v1/media/{key}) or "s3"
    media_dir: str = str(REPO_ROOT / ".stack" / "media")
    max_upload_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 50_000_000  # decoded size limit; larger images are refused as bombs
    media_workers: int = 0  # image processes; 0: one per core
    s3_bucket: str = "photos-media"
    s3_region: str = "us-east-1"
    s3_endpoint_url: str = ""  # empty: AWS; set for S3-compatible servers
    media_cdn_base_url: str = ""  # public base URL of the bucket/CDN; empty: the API's /v1/media
    media_sweep_grace_s: int = 3600  # media older than this with no post is collected by the sweeper
    media_sweep_interval_s: float = 300.0  # how often a stream worker runs the media sweeper

    # --- Posts -----------------------------------------------------------------
    max_caption_length: int = 2_200  # Instagram's limit
    max_location_length: int = 100

    # --- Local stack (infra/stack.py) -------------------------------------
    stack_dir: str = str(REPO_ROOT / ".stack")  # data + logs, git-ignored
    cache_dir: str = field(default_factory=_default_cache_dir)  # downloaded jars
    java_home: str = "/usr/lib/jvm/java-17-openjdk-amd64"
    cassandra_version: str = "5.0.8"
    cassandra_heap: str = "1G"
    cassandra_storage_port: int = 7000
    # When the local node acknowledges a write (docs/reliability.md): "batch" (the default; measured the
    # fastest of the durable modes here) and "group" answer only once the commit log is on disk, so a
    # crash of the node loses nothing it acknowledged; "periodic" answers at once and syncs every window,
    # losing up to a window's writes when the node crashes.
    cassandra_commitlog_sync: str = "batch"
    # group: how long the syncer waits between syncs; periodic: the sync period. Unused by batch.
    cassandra_commitlog_window_ms: int = 10
    # write threads of the local node; in group and batch modes each waits out the sync, so keep it well
    # above the writes in flight
    cassandra_concurrent_writes: int = 64
    kafka_version: str = "4.1.1"
    kafka_heap: str = "512M"
    kafka_controller_port: int = 9093
    redis_port: int = 6379
    # `photos-stack up --cassandra-nodes N --kafka-brokers N` (infra/cluster.py): heaps of each node, sized so
    # that 3 + 3 fit beside the rest on a 2-core, 24 GiB machine, and the JMX port of Cassandra node 1 (node i
    # uses this + i - 1, on 127.0.0.1; nodetool needs it). A single node keeps cassandra_heap and kafka_heap
    cassandra_node_heap: str = "512M"
    kafka_broker_heap: str = "384M"
    cassandra_jmx_port: int = 7199

    def __post_init__(self) -> None:
        if self.cassandra_commitlog_sync not in COMMITLOG_SYNC_MODES:
            raise ValueError(
                f"PHOTOS_CASSANDRA_COMMITLOG_SYNC={self.cassandra_commitlog_sync!r}: "
                f"choose one of {', '.join(COMMITLOG_SYNC_MODES)}"
            )
        if self.cassandra_commitlog_window_ms < 1:
            raise ValueError("PHOTOS_CASSANDRA_COMMITLOG_WINDOW_MS must be at least 1")
        for network in self.trusted_proxies:
            try:
                ipaddress.ip_network(network)
            except ValueError as exc:
                raise ValueError(f"PHOTOS_TRUSTED_PROXIES: {network!r} is not an address or network ({exc})") from None
        if self.body_read_idle_timeout_s <= 0 or self.body_read_deadline_s <= 0:
            raise ValueError("PHOTOS_BODY_READ_IDLE_TIMEOUT_S and PHOTOS_BODY_READ_DEADLINE_S must be positive")
        if self.argon2_threads < 1 or self.argon2_max_waiting < 0:
            raise ValueError("PHOTOS_ARGON2_THREADS must be at least 1 and PHOTOS_ARGON2_MAX_WAITING at least 0")
        if self.feed_ranker not in FEED_RANKERS:
            raise ValueError(f"PHOTOS_FEED_RANKER={self.feed_ranker!r}: choose one of {', '.join(FEED_RANKERS)}")
        if not 0 <= self.feed_ranker_split_percent <= 100:
            raise ValueError("PHOTOS_FEED_RANKER_SPLIT_PERCENT must be between 0 and 100")
        if not 0.0 <= self.ranking_impression_sample <= 1.0:
            raise ValueError("PHOTOS_RANKING_IMPRESSION_SAMPLE must be between 0 and 1")
        if self.ranking_log_shards < 1 or self.ranking_log_ttl_days < 1 or self.ranker_poll_s <= 0:
            raise ValueError("PHOTOS_RANKING_LOG_SHARDS, PHOTOS_RANKING_LOG_TTL_DAYS and PHOTOS_RANKER_POLL_S"
                             " must be positive")
        if self.streams_max_attempts < 1:
            raise ValueError("PHOTOS_STREAMS_MAX_ATTEMPTS must be at least 1")
        self.streams_attempts_by_agent()  # raises on a malformed entry
        self.check_credentials()

    def check_credentials(self) -> None:
        """ValueError for credential and TLS settings that cannot work together (checked at start-up, not at
        the first connection)."""
        if self.cassandra_password and not self.cassandra_username:
            raise ValueError("PHOTOS_CASSANDRA_PASSWORD is set without PHOTOS_CASSANDRA_USERNAME")
        cassandra_files = (self.cassandra_tls_ca_file, self.cassandra_tls_cert_file, self.cassandra_tls_key_file)
        if any(cassandra_files) and not self.cassandra_tls:
            raise ValueError("PHOTOS_CASSANDRA_TLS_* files are set but PHOTOS_CASSANDRA_TLS is off")
        if self.redis_username and not self.redis_password:
            raise ValueError("PHOTOS_REDIS_USERNAME is set without PHOTOS_REDIS_PASSWORD")
        redis_files = (self.redis_tls_ca_file, self.redis_tls_cert_file, self.redis_tls_key_file)
        if any(redis_files) and not self.redis_url.startswith("rediss://"):
            raise ValueError("PHOTOS_REDIS_TLS_* files are set but PHOTOS_REDIS_URL is not rediss://")
        if self.kafka_security_protocol not in KAFKA_SECURITY_PROTOCOLS:
            raise ValueError(f"PHOTOS_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol!r}: "
                             f"choose one of {', '.join(KAFKA_SECURITY_PROTOCOLS)}")
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl and self.kafka_sasl_mechanism not in KAFKA_SASL_MECHANISMS:
            raise ValueError(f"PHOTOS_KAFKA_SASL_MECHANISM={self.kafka_sasl_mechanism!r}: "
                             f"choose one of {', '.join(KAFKA_SASL_MECHANISMS)}")
        if sasl and not (self.kafka_username and self.kafka_password):
            raise ValueError(f"PHOTOS_KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                             "PHOTOS_KAFKA_USERNAME and PHOTOS_KAFKA_PASSWORD")
        if not sasl and (self.kafka_username or self.kafka_password):
            raise ValueError("PHOTOS_KAFKA_USERNAME/PASSWORD are set but PHOTOS_KAFKA_SECURITY_PROTOCOL "
                             f"is {self.kafka_security_protocol} (SASL_SSL sends them)")
        kafka_files = (self.kafka_tls_ca_file, self.kafka_tls_cert_file, self.kafka_tls_key_file)
        if any(kafka_files) and not self.kafka_security_protocol.endswith("SSL"):
            raise ValueError(f"PHOTOS_KAFKA_TLS_* files are set but PHOTOS_KAFKA_SECURITY_PROTOCOL is "
                             f"{self.kafka_security_protocol}")
        if self.stack_auth and not (self.cassandra_password and self.redis_password):
            raise ValueError("PHOTOS_STACK_AUTH=1 needs the credentials it sets up: PHOTOS_CASSANDRA_USERNAME "
                             "and _PASSWORD, PHOTOS_REDIS_PASSWORD (and PHOTOS_REDIS_USERNAME for an ACL user)")

    def require_own_secret(self) -> None:
        """ValueError unless cursors are signed with a secret of this deployment's own, or a development
        setting allows the public default: a deployment that forgot PHOTOS_SECRET_KEY stops at start-up
        instead of signing with a key anyone can read in this repository."""
        if self.secret_key not in (DEV_SECRET_KEY, "") or self.allow_dev_secret:
            return
        shown = "empty" if not self.secret_key else f"the development default {DEV_SECRET_KEY!r}"
        raise ValueError(
            f"PHOTOS_SECRET_KEY is {shown}, which anyone can use to sign cursors. Set PHOTOS_SECRET_KEY to a "
            "long random value, the same on every API process (python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'), or PHOTOS_ALLOW_DEV_SECRET=1 on a development machine"
        )

    def streams_attempts_by_agent(self) -> dict[str, int]:
        """The agents given their own attempt limit by streams_max_attempts_by_agent."""
        limits: dict[str, int] = {}
        for entry in self.streams_max_attempts_by_agent:
            agent, _, attempts = entry.partition("=")
            if not agent.strip() or not attempts.strip().isdigit() or int(attempts) < 1:
                raise ValueError(f"PHOTOS_STREAMS_MAX_ATTEMPTS_BY_AGENT: {entry!r} is not agent=attempts (at least 1)")
            limits[agent.strip()] = int(attempts)
        return limits

    def streams_attempts(self, agent: str) -> int:
        """How many times `agent` tries a batch, and then each of its events, before dead-lettering."""
        return self.streams_attempts_by_agent().get(agent, self.streams_max_attempts)

    @property
    def public_url(self) -> str:
        return (self.public_base_url or f"http://{self.api_host}:{self.api_port}").rstrip("/")

    @property
    def kafka_port(self) -> int:
        return int(self.kafka_bootstrap.rsplit(":", 1)[1].split(",")[0])

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Build settings from `PHOTOS_*` variables, falling back to the defaults."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(f"PHOTOS_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _parse(f.name, raw, f.type)
        return cls(**values)


def _parse(name: str, raw: str, type_name: object) -> object:
    kind = str(type_name)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return raw.strip().lower() in {"1", "true", "yes", "on"}
        if kind.startswith("tuple"):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError(f"PHOTOS_{name.upper()}={raw!r} is not a valid {kind}") from exc
    return raw
