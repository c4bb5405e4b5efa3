"""photos-replay-dead without Kafka: what a dead letter says, and the topics it accepts (the replay itself
runs against Kafka in tests/integration/test_dead_letters.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from streams.dead_letters import Letter, main


def record(offset: int, headers: dict[str, str] | None = None) -> SimpleNamespace:
    return SimpleNamespace(topic="photos.likes.dead", offset=offset, key=b"42", value=b"{}",
                           headers=[(name, value.encode()) for name, value in (headers or {}).items()])


HEADERS = {"photos-dead-topic": "photos.likes", "photos-dead-partition": "3", "photos-dead-offset": "1041",
           "photos-dead-agent": "like_counts", "photos-dead-attempts": "5", "photos-dead-error": "KeyError('x')"}


def test_a_letter_names_the_event_it_holds_and_why():
    letter = Letter.of(record(7, HEADERS))
    assert (letter.topic, letter.partition, letter.offset) == ("photos.likes", 3, 1041)
    assert letter.source == ("photos.likes", 3, 1041)
    assert letter.describe() == ("photos.likes partition 3 offset 1041 key 42: agent like_counts, 5 attempts, "
                                 "KeyError('x')")


def test_two_agents_letters_of_one_event_are_one_event():
    assert Letter.of(record(7, HEADERS)).source == Letter.of(record(8, {**HEADERS, "photos-dead-agent": "x"})).source


def test_a_letter_without_headers_goes_back_to_the_topic_its_name_says_and_stands_for_itself():
    letter = Letter.of(record(7))
    assert letter.topic == "photos.likes"
    assert letter.source == ("photos.likes.dead", -1, 7)


def test_only_the_projects_topics_are_replayed(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["likes", "photos.likes"])
    assert exit_.value.code == 2
    assert "no such topic: photos.likes" in capsys.readouterr().err
