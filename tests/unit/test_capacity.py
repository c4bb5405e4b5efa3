"""photos-capacity against a hand calculation on a small made-up profile and traffic model, and bad input.

The expected figures below are worked out by hand in the comments, not by re-running the planner's
formulas; the numbers are chosen so that every fallback and every term of a max() shows up once.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from loadtest.capacity import DEFAULT_TRAFFIC, EXIT_BAD_INPUT, load_profile, load_traffic, main, plan

TRAFFIC = """
[model]
daily_active_users = 1_000
feed_page_size = 10
feed_pages_per_load = 2

[tasks.feed]
route = "GET /v1/feed"
rate = 100
source = "seed"

[tasks.like]
route = "PUT /v1/posts/{post_id}/like"
rate = 20
source = "seed"

[tasks.unlike]
route = "DELETE /v1/posts/{post_id}/like"
rate = 5
source = "assumed"

[tasks.upload]
route = "POST /v1/posts"
rate = 2
source = "seed"

[tasks.story]
route = "POST /v1/stories"
rate = 1
source = "seed"

[tasks.profile]
route = "GET /v1/users/{user_id}"
rate = 10
source = "assumed"

[deployment]
replication_factor = { value = 3, source = "assumed", why = "t" }
read_replicas = { value = 2, source = "assumed", why = "t" }
write_replicas = { value = 3, source = "assumed", why = "t" }
write_share_of_changing_requests = { value = 0.25, source = "assumed", why = "t" }
cassandra_target_utilisation = { value = 0.5, source = "assumed", why = "t" }
cassandra_node_cores = { value = 4, source = "assumed", why = "t" }
cassandra_ms_per_request = { value = 1.5, source = "assumed", why = "t" }
cassandra_requests_per_request = { value = 2, source = "assumed", why = "t" }
stream_cassandra_requests_per_kafka_message = { value = 4, source = "assumed", why = "t" }
cassandra_disk_tb = { value = 0.1, source = "assumed", why = "t" }
cassandra_compaction_headroom = { value = 1.0, source = "assumed", why = "t" }
cassandra_density_limit_tb = { value = 0.02, source = "assumed", why = "t" }
api_target_utilisation = { value = 0.5, source = "assumed", why = "t" }
api_cpu_ms_per_request = { value = 7, source = "assumed", why = "t" }
image_pipeline_cpu_ms = { value = 173, source = "assumed", why = "t" }
streams_target_utilisation = { value = 0.5, source = "assumed", why = "t" }
streams_ms_per_kafka_message = { value = 9, source = "assumed", why = "t" }
kafka_replication_factor = { value = 3, source = "assumed", why = "t" }
kafka_min_brokers = { value = 3, source = "assumed", why = "t" }
kafka_min_partitions = { value = 2, source = "assumed", why = "t" }
kafka_partition_mb_s = { value = 0.001, source = "assumed", why = "t" }
kafka_broker_write_mb_s = { value = 0.01, source = "assumed", why = "t" }
kafka_max_partition_replicas_per_broker = { value = 10, source = "assumed", why = "t" }
kafka_retention_hours = { value = 1, source = "assumed", why = "t" }
kafka_broker_disk_tb = { value = 0.00001, source = "assumed", why = "t" }
redis_node_memory_gb = { value = 0.05, source = "assumed", why = "t" }
redis_memory_headroom = { value = 0.5, source = "assumed", why = "t" }
redis_replicas_per_primary = { value = 1, source = "assumed", why = "t" }
cdn_hit_ratio = { value = 0.9, source = "assumed", why = "t" }

[deployment.events_per_request]
source = "assumed"
why = "t"
value = { "POST /v1/posts" = { posts = 1 } }

[storage]
total_users = { value = 1_000, source = "seed", why = "t" }
retention_years = { value = 1, source = "seed", why = "t" }
story_rows_hours = { value = 2, source = "assumed", why = "t" }
story_media_hours = { value = 24, source = "assumed", why = "t" }
media_bytes_per_story = { value = 3_000, source = "assumed", why = "t" }
seed_posts_per_day = { value = 1_000, source = "seed", why = "t" }
seed_photo_bytes = { value = 2_000, source = "seed", why = "t" }
seed_thumbnail_bytes = { value = 50, source = "seed", why = "t" }
seed_total_pb = { value = 400, source = "seed", why = "t" }
redis_bytes_per_session = { value = 50, source = "assumed", why = "t" }
sessions_per_active_user = { value = 2, source = "assumed", why = "t" }
redis_bytes_per_cached_feed = { value = 99_999, source = "assumed", why = "t" }
feed_cache_ttl_s = { value = 60, source = "assumed", why = "t" }
weekly_active_users = { value = 2_000, source = "assumed", why = "t" }
redis_bytes_per_active_mark = { value = 100, source = "assumed", why = "t" }
liked_posts_per_day = { value = 10_000, source = "assumed", why = "t" }
redis_bytes_per_like_count = { value = 100, source = "assumed", why = "t" }
redis_bytes_per_indexed_name = { value = 99_999, source = "assumed", why = "t" }
distinct_hashtags = { value = 500, source = "assumed", why = "t" }
hashtags_per_post = { value = 2, source = "assumed", why = "t" }
trending_days = { value = 3, source = "assumed", why = "t" }
redis_bytes_per_trending_member = { value = 50, source = "assumed", why = "t" }

[storage.media_variant_bytes]
source = "assumed"
why = "t"
value = { original = 9, large = 9, medium = 9, thumbnail = 9 }

[storage.cassandra_bytes_per_entity]
source = "assumed"
why = "t"
value = { user = 9, post = 9, follow = 150, like = 9, comment = 9, story = 9 }

[storage.kafka_message_bytes]
source = "assumed"
why = "t"
value = { likes = 200, posts = 300, stories = 100 }

[storage.egress]
source = "assumed"
why = "t"
[storage.egress.value]
"GET /v1/feed" = { variant = "large", images = "feed_page_size" }
"GET /v1/users/{user_id}" = { variant = "thumbnail", images = 3 }
"""

PROFILE = {
    "schema": 1,
    "created_at": "2026-12-07T08:00:00Z",
    "host": "http://127.0.0.1:8080",
    "mix": "seed",
    "environment": {"cores": 2, "shared": "everything", "cassandra_nodes": 1},
    "knee": {"users": 10, "requests_per_s": 20.0, "p50_ms": 5.0, "p99_ms": 50.0, "error_ratio": 0.0},
    "routes": {
        "GET /v1/feed": {"requests_per_s": 10.0, "api_cpu_ms": 4.0, "cassandra_requests": 3.0,
                         "kafka_messages": 0.0, "kafka_by_topic": {}},
        "PUT /v1/posts/{post_id}/like": {"requests_per_s": 10.0, "api_cpu_ms": 2.0, "cassandra_requests": 4.0,
                                         "cassandra_write_share": 0.5,
                                         "kafka_messages": 1.0, "kafka_by_topic": {"photos.likes": 1.0}},
        "DELETE /v1/posts/{post_id}/like": {"api_cpu_ms": 2.0, "cassandra_requests": 4.0,
                                            "kafka_messages": 1.0, "kafka_by_topic": {"photos.likes": 1.0}},
        "POST /v1/posts": {"api_cpu_ms": 200.0, "cassandra_requests": 10.0,
                           "kafka_messages": 1.0, "kafka_by_topic": {"photos.posts": 1.0}},
        "POST /v1/stories": {"api_cpu_ms": 100.0, "cassandra_requests": 6.0,
                             "kafka_messages": 1.0, "kafka_by_topic": {"photos.stories": 1.0}},
    },
    "cpu": {
        "cores": {"api": 0.1, "cassandra": 0.06},
        "ms_per_request": {"api": 5.0, "cassandra": 2.0},
        "cassandra_ms_per_cassandra_request": 0.5,
        "streams_ms_per_kafka_message": 4.0,
    },
    "storage": {
        "media_variant_bytes": {"original": 1_000, "large": 500, "medium": 200, "thumbnail": 100},
        "media_bytes_per_post": 1_800, "media_bytes_per_story": None,
        "cassandra_bytes_per_post": 1_000, "cassandra_bytes_per_story": 500, "cassandra_bytes_per_user": 2_000,
        "cassandra_bytes_per_follow": None, "cassandra_bytes_per_like": 100, "cassandra_bytes_per_comment": 200,
        "redis_bytes_per_session": None, "redis_bytes_per_user_index": 100, "redis_bytes_per_cached_feed": 5_000,
    },
}
YEAR_S = 365 * 86_400  # 31,536,000


@pytest.fixture
def traffic_file(tmp_path: Path) -> Path:
    path = tmp_path / "traffic.toml"
    path.write_text(TRAFFIC)
    return path


def write_profile(tmp_path: Path, profile: dict) -> Path:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    return path


@pytest.fixture
def bill(tmp_path: Path, traffic_file: Path):
    return plan(load_profile(str(write_profile(tmp_path, PROFILE))), load_traffic(str(traffic_file)))


def value(bill, line_id: str) -> float:
    return bill.line(line_id).value


def test_api_cores_are_the_rate_weighted_cpu_per_request_over_the_target_utilisation(bill):
    # feed 100/s x 4 ms = 400, like 20 x 2 = 40, unlike 5 x 2 = 10, upload 2 x 200 = 400, story 1 x 100 = 100,
    # profile 10 x 5 (not in the profile: its mix average) = 50 -> 1,000 ms of CPU a second = 1 core, / 0.5
    assert value(bill, "api.cores") == pytest.approx(2.0)
    assert value(bill, "api.processes") == 2
    # the story upload's 100 ms is below the image pipeline's 173 ms: the profile missed the image workers, so
    # the pipeline is added: 1 story/s x 173 ms = 0.173 cores, / 0.5 = 0.346; the post upload's 200 ms covers it
    assert value(bill, "api.image_cores") == pytest.approx(0.346)
    assert any(check.startswith("POST /v1/stories: 100 ms") for check in bill.checks)
    assert not any(check.startswith("POST /v1/posts:") for check in bill.checks)


def test_stream_workers_follow_the_kafka_messages(bill):
    # like 20 + unlike 5 + upload 2 + story 1 = 28 messages/s (the feed sends none, GET /v1/users is not in the
    # assumed events table); 28 x 4 ms = 112 ms/s = 0.112 cores, / 0.5 = 0.224 -> 1 process
    assert value(bill, "streams.messages") == pytest.approx(28)
    assert value(bill, "streams.cores") == pytest.approx(0.224)
    assert value(bill, "streams.processes") == 1


def test_kafka_partitions_and_brokers_take_the_largest_of_their_limits(bill):
    # likes: 25 messages/s x 200 B = 5,000 B/s, at 1,000 B/s a partition -> 5 (more than the minimum 2,
    # the 1 worker and the ceil(25 x 4 / 1000 / 0.5 = 0.2) = 1 consumer core)
    assert value(bill, "kafka.partitions.likes") == 5
    # posts: 2 x 300 = 600 B/s -> 1 by bytes; stories 1 x 100 = 100 B/s -> 1; the minimum of 2 wins for both
    assert value(bill, "kafka.partitions.posts") == 2
    assert value(bill, "kafka.partitions.stories") == 2
    # 5,700 B/s produced in 9 partitions, RF 3: throughput 5,700 x 3 / 10,000 B/s = 1.71 -> 2; partitions
    # 9 x 3 / 10 = 2.7 -> 3; disk 5,700 x 3,600 s x 3 / 10 MB = 6.156 -> 7; at least 3 -> 7 brokers
    assert value(bill, "kafka.brokers") == 7


def test_cassandra_requests_come_from_the_api_routes_and_from_the_stream_workers(bill):
    # the knee's routes (feed 10/s, like 10/s: all of its 20 req/s) sent 10 x 3 + 10 x 4 = 70 Cassandra requests/s,
    # 3.5 a request: what GET /v1/users (not in the profile) is taken to send
    # feed 100 x 3 + like 20 x 4 + unlike 5 x 4 + upload 2 x 10 + story 1 x 6 + profile 10 x 3.5 = 461 requests/s
    assert value(bill, "cassandra.api_requests") == pytest.approx(461)
    # Cassandra served 0.06 cores / 0.5 ms = 120 requests/s at the knee, 70 of them the API's: the other 50 came
    # from the stream workers, over the knee's 10 Kafka messages/s (likes) = 5 a message; 28 messages/s x 5 = 140
    assert value(bill, "cassandra.stream_requests") == pytest.approx(140)
    assert bill.line("cassandra.stream_requests").sources == ("measured", "seed", "assumed")


def test_cassandra_cores_scale_each_request_by_the_replicas_it_touches_in_production(bill):
    # measured on one node (RF 1): a request touched 1 replica, so the factor is the production replicas:
    #   feed 300 requests/s, reads: x 2                                        = 600
    #   like 80, measured write share 0.5: x (0.5 x 3 + 0.5 x 2 = 2.5)         = 200
    #   unlike 20, assumed write share 0.25: x (0.25 x 3 + 0.75 x 2 = 2.25)    = 45
    #   upload 20 x 2.25 = 45; story 6 x 2.25 = 13.5; profile 35 (a GET) x 2  = 70
    #   stream workers 140 x 2.25                                              = 315
    # 1,288.5 replica requests/s x 0.5 ms = 644.25 ms/s = 0.64425 cores, / 0.5 = 1.2885 cores -> 1 node of 4
    assert value(bill, "cassandra.cores") == pytest.approx(1.2885)
    assert value(bill, "cassandra.nodes_by_cpu") == 1


def test_cassandra_storage_accumulates_each_entity_over_the_retention(bill):
    # users 1,000 x 2,000 B = 2,000,000
    assert value(bill, "cassandra.data.user") == pytest.approx(2_000_000)
    # posts 2/s x 31,536,000 s x 1,000 B = 63,072,000,000
    assert value(bill, "cassandra.data.post") == pytest.approx(63_072_000_000)
    # likes (20 - 5 unlikes)/s x 31,536,000 x 100 B = 47,304,000,000
    assert value(bill, "cassandra.data.like") == pytest.approx(47_304_000_000)
    # stories alive at once: 1/s x 2 h x 3,600 = 7,200, x 500 B = 3,600,000
    assert value(bill, "cassandra.data.story") == pytest.approx(3_600_000)
    # no comment or follow traffic: nothing stored (the follow size falls back to the assumed 150 B)
    assert value(bill, "cassandra.data.comment") == 0
    assert value(bill, "cassandra.data.follow") == 0
    assert "assumed" in bill.line("cassandra.data.follow").sources
    # one copy 110,381,600,000 B; on disk x 3 replicas x (1 + 1.0 headroom) = 662,289,600,000
    assert value(bill, "cassandra.data") == pytest.approx(110_381_600_000)
    assert value(bill, "cassandra.disk") == pytest.approx(662_289_600_000)
    # by disk 662.3 GB / 100 GB = 6.6 -> 7; by density 331.1 GB / 20 GB = 16.6 -> 17; nodes = max(3, 1, 17)
    assert value(bill, "cassandra.nodes_by_storage") == 17
    assert value(bill, "cassandra.nodes") == 17


def test_redis_memory_adds_each_structure_then_the_headroom(bill):
    # sessions: 1,000 daily actives x 2 x 50 B (not measured: the assumed 50) = 100,000
    assert value(bill, "redis.sessions") == pytest.approx(100_000)
    assert bill.line("redis.sessions").sources == ("seed", "assumed")
    # first feed pages: 100 feed requests / 2 pages a load = 50 first pages a second x 60 s x 5,000 B = 15,000,000
    assert value(bill, "redis.feed_pages") == pytest.approx(15_000_000)
    # search: (1,000 users + 500 tags) x 100 B (measured, so not the assumed 99,999) = 150,000
    assert value(bill, "redis.search") == pytest.approx(150_000)
    # trending: 2 uploads/s x 86,400 = 172,800 posts a day x 2 tags x 3 days x 50 B = 51,840,000
    assert value(bill, "redis.trending") == pytest.approx(51_840_000)
    # + marks 2,000 x 100 = 200,000 + like counts 10,000 x 100 = 1,000,000 -> 68,290,000, x 1.5 = 102,435,000
    assert value(bill, "redis.memory") == pytest.approx(102_435_000)
    # 102,435,000 / 50,000,000 B a node = 2.05 -> 3 primaries, each with a replica -> 6
    assert value(bill, "redis.nodes") == 6
    assert any("3 primaries" in check for check in bill.checks)


def test_media_storage_and_the_seed_comparison(bill):
    # posts: 2/s x 31,536,000 s x 1 year x 1,800 B = 113,529,600,000
    assert value(bill, "media.posts") == pytest.approx(113_529_600_000)
    # live stories: 1/s x 24 h x 3,600 x 3,000 B (not measured: the assumed figure) = 259,200,000
    assert value(bill, "media.stories") == pytest.approx(259_200_000)
    assert value(bill, "media.total") == pytest.approx(113_788_800_000)
    # the seed's way: 1,000 posts a day x 365 x 1 year x (2,000 + 50) B = 748,250,000; ours at 1,800 B a post
    # = 657,000,000; the seed's figure is 2,050 / 1,800 = 1.1389 times ours
    assert value(bill, "media.seed") == pytest.approx(748_250_000)
    assert value(bill, "media.seed_at_ours") == pytest.approx(657_000_000)
    assert value(bill, "media.seed_ratio") == pytest.approx(2_050 / 1_800)
    assert bill.line("media.seed").sources == ("seed",)


def test_egress_is_the_images_each_request_fetches(bill):
    # feed 100/s x 10 (feed_page_size) large of 500 B = 500,000; GET /v1/users 10/s x 3 thumbnails of 100 B = 3,000
    assert value(bill, "egress.edge") == pytest.approx(503_000)
    # 10% of it misses the CDN
    assert value(bill, "egress.origin") == pytest.approx(50_300)


def test_every_line_names_its_inputs_and_their_sources(bill):
    for line in bill.lines:
        assert line.inputs, line.id
        assert line.sources, line.id
        assert set(line.sources) <= {"measured", "seed", "assumed"}


def test_a_null_measurement_falls_back_to_the_assumption_and_says_so(tmp_path, traffic_file):
    profile = copy.deepcopy(PROFILE)
    profile["cpu"]["cassandra_ms_per_cassandra_request"] = None  # a remote cluster: no Cassandra CPU seen
    result = plan(load_profile(str(write_profile(tmp_path, profile))), load_traffic(str(traffic_file)))
    # the API's requests are still measured (973.5 replica requests/s as above); the stream workers' can no longer
    # be derived: the assumed 4 a message, 28 x 4 = 112 requests/s x 2.25 = 252; each at the assumed 1.5 ms of
    # one replica: (973.5 + 252) x 1.5 = 1,838.25 ms/s, / 1000 / 0.5 = 3.6765 cores
    assert result.line("cassandra.stream_requests").value == pytest.approx(112)
    line = result.line("cassandra.cores")
    assert line.value == pytest.approx(3.6765)
    assert "assumed" in line.sources
    cost = next(item for item in line.inputs if item.name == "cassandra_ms_per_cassandra_request")
    assert cost.value == "1.5" and cost.sources == ("assumed",) and cost.origin.startswith("not measured")


def test_stream_requests_are_not_derived_from_a_knee_the_routes_do_not_cover(tmp_path, traffic_file):
    profile = copy.deepcopy(PROFILE)
    profile["knee"]["requests_per_s"] = 100.0  # the routes' 20 req/s are a fifth of it: the rest is unexplained
    result = plan(load_profile(str(write_profile(tmp_path, profile))), load_traffic(str(traffic_file)))
    assert result.line("cassandra.stream_requests").value == pytest.approx(28 * 4)  # the assumed 4 a message
    assert "cover under 95%" in result.line("cassandra.stream_requests").inputs[-1].origin


def test_the_text_report_and_the_json_carry_the_same_lines(tmp_path, traffic_file, capsys):
    profile = write_profile(tmp_path, PROFILE)
    assert main(["--profile", str(profile), "--traffic", str(traffic_file)]) == 0
    text = capsys.readouterr().out
    assert "seed estimate / ours" in text and "1.14 x" in text
    assert "How each line was found" in text
    assert main(["--profile", str(profile), "--traffic", str(traffic_file), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["schema"] == 1
    ids = [line["id"] for line in document["lines"]]
    assert "cassandra.nodes" in ids and "egress.origin" in ids
    by_id = {line["id"]: line for line in document["lines"]}
    assert by_id["kafka.brokers"]["value"] == 7
    assert by_id["api.cores"]["sources"] == ["measured", "seed", "assumed"]


def test_the_projects_traffic_model_plans_with_the_documented_sample_profile(tmp_path):
    sample = copy.deepcopy(PROFILE)
    result = plan(load_profile(str(write_profile(tmp_path, sample))), load_traffic(str(DEFAULT_TRAFFIC)))
    assert result.line("cassandra.nodes").value >= 3
    assert result.line("media.seed").value == pytest.approx(100_000_000 * 365 * 5 * 2_050_000)  # 374.1 PB


def run_bad(capsys, *argv: str) -> str:
    assert main(list(argv)) == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("photos-capacity: ") and captured.err.count("\n") == 1, captured.err
    assert "Traceback" not in captured.err
    return captured.err


def test_a_missing_profile_is_one_line(capsys, tmp_path, traffic_file):
    assert "cannot read the profile" in run_bad(
        capsys, "--profile", str(tmp_path / "nope.json"), "--traffic", str(traffic_file))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({**PROFILE, "schema": 2}), "schema 2 is not supported"),
        (json.dumps({k: v for k, v in PROFILE.items() if k != "schema"}), "schema None is not supported"),
        (json.dumps({k: v for k, v in PROFILE.items() if k != "cpu"}), "'cpu' must be an object"),
        (json.dumps({**PROFILE, "routes": {"GET /v1/feed": {"api_cpu_ms": "fast"}}}), "routes.GET /v1/feed.api_cpu_ms"),
        (json.dumps({**PROFILE, "routes": {"GET /v1/feed": {"api_cpu_ms": -1}}}), "expected a number >= 0"),
        (json.dumps({**PROFILE, "routes": {"GET /v1/feed": {"api_cpu_ms": True}}}), "expected a number >= 0"),
        (json.dumps({**PROFILE, "storage": {**PROFILE["storage"], "media_variant_bytes": [1]}}),
         "storage.media_variant_bytes"),
    ],
)
def test_a_malformed_profile_is_one_line(capsys, tmp_path, traffic_file, text, says):
    path = tmp_path / "profile.json"
    path.write_text(text)
    assert says in run_bad(capsys, "--profile", str(path), "--traffic", str(traffic_file))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[model\n", "not TOML"),
        (TRAFFIC.replace("[deployment", "[deployed"), "no [deployment] section"),
        (TRAFFIC.replace('api_target_utilisation = { value = 0.5, source = "assumed", why = "t" }\n', ""),
         "[deployment] has no api_target_utilisation"),
        (TRAFFIC.replace('value = 0.9, source = "assumed"', 'value = 0.9, source = "guess"'),
         "cdn_hit_ratio: source must be one of"),
        (TRAFFIC.replace('retention_years = { value = 1,', 'retention_years = { value = "one",'),
         "retention_years: value must be a number"),
        (TRAFFIC.replace('rate = 100\n', 'rate = "lots"\n'), "[tasks.feed] rate"),
        (TRAFFIC.replace("likes = 200, ", ""), "kafka_message_bytes has no topic 'likes'"),
    ],
)
def test_a_malformed_traffic_model_is_one_line(capsys, tmp_path, text, says):
    traffic = tmp_path / "traffic.toml"
    traffic.write_text(text)
    profile = write_profile(tmp_path, PROFILE)
    assert says in run_bad(capsys, "--profile", str(profile), "--traffic", str(traffic))


def test_a_missing_traffic_model_is_one_line(capsys, tmp_path):
    profile = write_profile(tmp_path, PROFILE)
    assert "cannot read the traffic model" in run_bad(
        capsys, "--profile", str(profile), "--traffic", str(tmp_path / "none.toml"))
