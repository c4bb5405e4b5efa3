"""The load ledger: what is written per request, and how the records fold into what the audit demands."""

from __future__ import annotations

import json
import os

import pytest

from loadtest.ledger import Ledger, LedgerWriter, normalised_hashtags, read_ledger, read_records


@pytest.fixture
def writer(tmp_path):
    w = LedgerWriter(tmp_path)
    yield w
    w.close()


def test_records_go_to_one_file_per_process_with_the_fields_of_each_op(tmp_path, writer):
    writer.like("11", "22", True, 200, liked=True)
    writer.follow(11, "33", False, 0)
    writer.comment(11, 22, 201, "44")
    writer.upload(11, 201, "55", ["#Sun", "sun", "Beach", "2026"])
    writer.story(11, 201, 66)
    writer.view(11, "66", 204)
    assert [p.name for p in tmp_path.iterdir()] == [f"ledger-{os.getpid()}.jsonl"]
    lines = [json.loads(line) for line in writer.path.read_text().splitlines()]
    assert [line["op"] for line in lines] == ["like", "follow", "comment", "upload", "story", "view"]
    assert all(isinstance(line["t"], float) and line["user"] == 11 for line in lines)
    assert lines[0] | {"t": 0} == {"t": 0, "op": "like", "user": 11, "status": 200, "post": 22, "wanted": True,
                                    "liked": True}
    assert lines[1]["target"] == 33 and lines[1]["wanted"] is False and lines[1]["status"] == 0
    assert lines[2]["comment"] == 44
    assert lines[3]["post"] == 55 and lines[3]["hashtags"] == ["sun", "beach"]  # as the API extracts them
    assert lines[4]["story"] == 66 and lines[5]["story"] == 66


def test_a_record_is_on_disk_as_soon_as_it_is_written(writer):
    writer.like(1, 2, True, 200, liked=True)
    assert read_ledger(writer.directory).likes == {(1, 2): True}  # read while the writer is still open


def test_hashtags_are_normalised_like_a_caption():
    assert normalised_hashtags(["Café", "#café", "日本", "123", "a_b"]) == ["café", "日本", "a_b"]


def test_an_acknowledged_like_or_unlike_is_the_state_the_answer_gave(writer):
    writer.like(1, 10, True, 200, liked=True)
    writer.like(1, 11, True, 200, liked=True)
    writer.like(1, 11, False, 200, liked=False)
    writer.like(2, 10, True, 200)  # no body: what was asked
    ledger = read_ledger(writer.directory)
    assert ledger.likes == {(1, 10): True, (1, 11): False, (2, 10): True}
    assert ledger.statuses["like", 200] == 4 and ledger.acknowledged("like") == 4


@pytest.mark.parametrize("status", [0, 500, 503, 429])
def test_a_request_without_2xx_that_could_change_the_pair_makes_it_unknown(writer, status):
    writer.like(1, 10, True, 200, liked=True)
    writer.like(1, 10, False, status)
    writer.like(2, 10, True, status)  # the first request on the pair
    writer.follow(1, 5, True, 204)
    writer.follow(1, 5, False, status)
    ledger = read_ledger(writer.directory)
    assert ledger.likes == {(1, 10): None, (2, 10): None}
    assert ledger.follows == {(1, 5): None}
    assert ledger.follow_since == {}


def test_a_failed_request_asking_for_the_known_state_keeps_it_known(writer):
    writer.like(1, 10, True, 200, liked=True)
    writer.like(1, 10, True, 0)
    writer.follow(1, 5, False, 204)
    writer.follow(1, 5, False, 503)
    ledger = read_ledger(writer.directory)
    assert ledger.likes == {(1, 10): True}
    assert ledger.follows == {(1, 5): False}


def test_a_later_acknowledgement_ends_an_unknown_state(writer):
    writer.follow(1, 5, True, 0)
    writer.follow(1, 5, True, 204)
    writer.like(1, 10, True, 0)
    writer.like(1, 10, False, 200, liked=False)
    ledger = read_ledger(writer.directory)
    assert ledger.follows == {(1, 5): True} and ledger.likes == {(1, 10): False}


def test_follow_since_is_the_first_acknowledgement_of_an_unbroken_follow(tmp_path):
    lines = [
        {"t": 1.0, "op": "follow", "user": 1, "status": 204, "target": 5, "wanted": True},
        {"t": 2.0, "op": "follow", "user": 1, "status": 204, "target": 5, "wanted": True},  # no change
        {"t": 3.0, "op": "follow", "user": 2, "status": 204, "target": 5, "wanted": True},
        {"t": 4.0, "op": "follow", "user": 2, "status": 0, "target": 5, "wanted": False},  # maybe unfollowed
        {"t": 5.0, "op": "follow", "user": 2, "status": 204, "target": 5, "wanted": True},  # followed again
        {"t": 6.0, "op": "follow", "user": 3, "status": 204, "target": 5, "wanted": True},
        {"t": 7.0, "op": "follow", "user": 3, "status": 204, "target": 5, "wanted": False},
    ]
    (tmp_path / "ledger-1.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    ledger = read_ledger(tmp_path)
    assert ledger.follow_since == {(1, 5): 1.0, (2, 5): 5.0}
    assert ledger.stable_followers(5, before=4.0) == {1}
    assert ledger.stable_followers(5, before=5.5) == {1, 2}
    assert ledger.stable_followers(6, before=10.0) == set()
    assert ledger.follow_users() == {1, 2, 3, 5}


def test_creations_count_only_when_acknowledged(writer):
    writer.comment(1, 10, 201, "100")
    writer.comment(2, 10, 0, None)
    writer.comment(2, 12, 503, None)
    writer.upload(1, 201, "200", ["#x"])
    writer.upload(1, 0, None, ["#y"])
    writer.story(1, 201, "300")
    writer.story(2, 503, None)
    writer.view(2, 300, 204)
    writer.view(3, 300, 0)
    writer.view(4, 301, 404)
    ledger = read_ledger(writer.directory)
    assert ledger.comments == {10: [100]}
    assert ledger.comment_touches == {10: {1, 2}, 12: {2}}
    assert list(ledger.uploads) == [200]
    upload = ledger.uploads[200]
    assert (upload.author_id, upload.hashtags) == (1, ("x",)) and upload.t > 0
    assert list(ledger.stories) == [300] and ledger.stories[300].author_id == 1
    assert ledger.views == {(300, 2)}
    assert ledger.view_touches == {300: {2, 3}, 301: {4}}
    assert ledger.statuses["upload", 0] == 1 and ledger.acknowledged("upload") == 1
    assert ledger.touched_posts() == {10, 12}


def test_a_line_cut_short_by_a_crash_is_skipped_and_counted(tmp_path):
    good = {"t": 1.0, "op": "like", "user": 1, "status": 200, "post": 10, "wanted": True, "liked": True}
    (tmp_path / "ledger-7.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(good)[:25])
    ledger = read_ledger(tmp_path)
    assert ledger.likes == {(1, 10): True}
    assert ledger.records == 1 and ledger.truncated == 1


def test_several_files_are_merged_by_time_each_in_its_own_order(tmp_path):
    def like(t, user, wanted, status=200):
        return json.dumps({"t": t, "op": "like", "user": user, "status": status, "post": 10, "wanted": wanted,
                           "liked": wanted if status == 200 else None}) + "\n"

    # process A's account 1 likes then unlikes; process B's account 2 likes; a clock step back inside A's
    # file does not reorder A's own records
    (tmp_path / "ledger-100.jsonl").write_text(like(5.0, 1, True) + like(4.0, 1, False))
    (tmp_path / "ledger-200.jsonl").write_text(like(4.5, 2, True) + like(6.0, 2, True, status=0))
    (tmp_path / "other.jsonl").write_text(like(9.0, 3, True))  # not a ledger file
    records, bad = read_records(tmp_path)
    assert bad == 0 and len(records) == 4
    ledger = read_ledger(tmp_path)
    assert ledger.likes == {(1, 10): False, (2, 10): True}
    assert ledger.like_users(10) == {1, 2}


def test_an_empty_directory_is_an_empty_ledger(tmp_path):
    assert read_ledger(tmp_path) == Ledger()


def test_an_account_driven_by_two_processes_has_unknown_like_and_follow_states(tmp_path):
    def line(t, op, user, **fields):
        return json.dumps({"t": t, "op": op, "user": user, "status": 200 if op == "like" else 204, **fields}) + "\n"

    (tmp_path / "ledger-1.jsonl").write_text(
        line(1.0, "like", 1, post=10, wanted=True, liked=True) + line(2.0, "follow", 1, target=5, wanted=True)
        + line(3.0, "like", 2, post=10, wanted=True, liked=True))
    (tmp_path / "ledger-2.jsonl").write_text(line(1.5, "view", 1, story=7))
    ledger = read_ledger(tmp_path)
    assert ledger.shared_accounts == {1}
    assert ledger.likes == {(1, 10): None, (2, 10): True}
    assert ledger.follows == {(1, 5): None} and ledger.follow_since == {}
    assert ledger.views == {(7, 1)}  # what was acknowledged still was
