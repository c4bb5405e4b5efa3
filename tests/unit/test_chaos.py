"""The fault run's plan and report (loadtest/chaos.py); the run itself is in tests/e2e/test_chaos.py."""

from __future__ import annotations

import asyncio
import time

import pytest

from infra.cluster import Topology
from loadtest import chaos
from loadtest.chaos import FAULT_NAMES, Window, parse_args, plan_faults, read_requests, render, window_figures


def test_faults_aim_at_the_second_server_node_and_the_first_app_process_of_a_cluster():
    faults = {fault.name: fault for fault in plan_faults(list(FAULT_NAMES), Topology(3, 3, 2, 2))}
    assert faults["cassandra-kill"].inject == (("kill", "--stay-down", "cassandra-2"),)
    assert faults["cassandra-kill"].lift == (("start", "cassandra-2"),)
    assert faults["kafka-kill"].node == "kafka-2"
    assert faults["streams-kill"].inject == (("kill", "--stay-down", "streams-1"),)  # its partitions move meanwhile
    assert faults["api-kill"].inject == (("kill", "api-1"),)  # the supervisor restarts it; the others serve
    assert faults["cassandra-pause"].inject == (("pause", "cassandra-2"),)
    assert faults["cassandra-pause"].lift == (("resume", "cassandra-2"),)
    assert faults["redis-restart"].flush_redis


def test_on_a_single_node_stack_the_faults_aim_at_the_one_of_each():
    faults = {fault.name: fault for fault in plan_faults(list(FAULT_NAMES), Topology())}
    assert faults["cassandra-kill"].node == "cassandra"
    assert faults["streams-kill"].inject == (("kill", "streams"),) and not faults["streams-kill"].lift
    assert [f.name for f in plan_faults(["api-kill", "kafka-kill"], Topology())] == ["api-kill", "kafka-kill"]


def test_a_window_counts_its_own_requests_errors_by_status_and_when_errors_stopped(tmp_path):
    (tmp_path / "requests-1.jsonl").write_text(
        '[100.0,"/v1/feed",200,10.0]\n'
        '[101.0,"/v1/feed",503,20.0]\n'
        '[102.5,"/v1/posts/{post_id}/like",0,1000.0]\n'
        '[103.0,"/v1/stories/{story_id}/view",404,5.0]\n'
        '[200.0,"/v1/feed",200,10.0]\n'
        '[104.0,"/v1/feed",2'  # a torn last line: the writer was killed mid-line
    )
    (tmp_path / "requests-2.jsonl").write_text('[100.5,"/v1/feed",200,30.0]\n')
    requests = read_requests(tmp_path)
    assert [r[0] for r in requests] == [100.0, 100.5, 101.0, 102.5, 103.0, 200.0]
    window = Window("kafka-kill (kafka-2)", start=99.0, end=150.0, injected_at=99.5, converged_after_s=12.3)
    figures = window_figures(window, requests)
    assert figures["requests"] == 5
    assert figures["errors"] == 2  # the 503 and the request that got no answer; a 404 is an answer
    assert figures["non_2xx_by_status"] == {"0": 1, "404": 1, "503": 1}
    assert figures["errors_stopped_after_s"] == 4.0  # the unanswered one ended at 103.5
    assert figures["p50_ms"] == 20.0
    quiet = window_figures(Window("quiet", start=199.0, end=201.0), requests)
    assert quiet["errors"] == 0 and quiet["errors_stopped_after_s"] is None and quiet["p99_ms"] == 10.0


def test_the_report_lists_every_problem_and_says_so_when_there_is_none():
    window = {"window": "quiet", "seconds": 60.0, "requests": 900, "errors": 0, "non_2xx_by_status": {},
              "p50_ms": 21.0, "p99_ms": 140.0, "errors_stopped_after_s": None, "converged_after_s": None, "notes": []}
    result = {"mix": "seed", "users": 15, "down_s": 30.0, "cores": 2, "windows": [window],
              "audit": {"checked": {"likes": 40}, "converged_after_s": 0.4, "problems": []}, "problems": []}
    assert "nothing acknowledged was lost" in render(result)
    assert "| quiet | 60 | 900 | 0 | - | 21 | 140 | - | - |" in render(result)
    fault = {**window, "window": "kafka-kill (kafka-2)", "tracer_acknowledged_after_s": 3.5,
             "tracer_values": {"like_count": 4.0, "in_feed": 61.0}}
    result["windows"].append(fault)
    assert "| kafka-kill (kafka-2) | 3.5 | 4.0 | 61 |" in render(result)  # which derived value was slow
    result["problems"] = ["like (7, 8): acknowledged liked, Cassandra has no like"]
    text = render(result)
    assert "FAILED: 1 problems" in text and "- like (7, 8): acknowledged liked" in text


def test_unknown_faults_and_empty_windows_are_refused(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--host", "http://127.0.0.1:8080", "--faults", "cassandra-kill,meteor"])
    assert "unknown meteor" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parse_args(["--host", "http://127.0.0.1:8080", "--down-s", "0"])


async def test_the_tracer_is_timed_from_the_injection_even_while_the_node_is_still_down(monkeypatch, tmp_path):
    """Convergence is awaited beside the down time and the restart, not after them: a first version polled only
    once `photos-stack start` returned, so every value seemed to converge when the node came back."""
    commands = []

    def photos_stack(*args: str) -> str:
        commands.append(args)
        if args[0] == "start":
            time.sleep(0.6)  # the node takes its time to come back
        return " ".join(args)

    class Tracer:
        async def write(self) -> None:
            await asyncio.sleep(0.05)

        async def until_converged(self, since: float):
            await asyncio.sleep(0.05)
            return round(time.time() - since, 1), {"like_count": 1}, {"like_count": round(time.time() - since, 1)}

    monkeypatch.setattr(chaos, "photos_stack", photos_stack)
    (tmp_path / "requests").mkdir()
    args = parse_args(["--host", "http://127.0.0.1:8080", "--down-s", "0.3", "--recover-s", "0"])
    [fault] = plan_faults(["cassandra-kill"], Topology(3, 3))
    window = await chaos.run_fault(fault, args, settings=None, tracer=Tracer(), out=tmp_path)
    assert commands == [("kill", "--stay-down", "cassandra-2"), ("start", "cassandra-2")]
    assert window.tracer_acknowledged_after_s < 0.3 and window.converged_after_s < 0.3  # while it was down
    assert window.lifted_at - window.injected_at >= 0.9  # down 0.3 s, then 0.6 s to start
    assert window.end >= window.lifted_at
