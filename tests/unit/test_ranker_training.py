"""The training job's pure parts: metrics on small examples worked by hand, the time split, the promotion gate,
the command line's validation, the Spark session's settings and the grouping of collected rows."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from app.analytics import cli
from app.analytics.spark import DAY_MS, SparkOptions, SparkSetupError, Window, format_table, session_conf
from app.ranking import train as train_cli
from app.ranking.evaluation import (
    Query,
    Scores,
    dcg_at_k,
    evaluate,
    gate,
    ndcg_at_k,
    ranked_labels,
    recall_at_k,
    split_by_days,
    split_by_fraction,
)
from app.ranking.features import FEATURES
from app.ranking.training import queries_of
from app.settings import Settings

TODAY = 20_794  # 2026-12-07


def query(served_ms: int, labels=(1, 0), request_id: int | None = None) -> Query:
    n = len(labels)
    return Query(1, served_ms if request_id is None else request_id, served_ms, tuple(range(n)),
                 tuple((0.0,) * len(FEATURES) for _ in range(n)), tuple(labels))


class TestMetrics:
    def test_dcg_sums_exponential_gains_over_log_discounts(self):
        # (2^3-1)/log2(2) + (2^2-1)/log2(3) + 0 = 7 + 3/1.58496
        assert dcg_at_k([3, 2, 0]) == pytest.approx(7 + 3 / math.log2(3))

    def test_ndcg_of_the_ideal_order_is_one_and_of_a_swapped_pair_one_over_log2_3(self):
        assert ndcg_at_k([3, 2, 0]) == pytest.approx(1.0)
        assert ndcg_at_k([0, 3]) == pytest.approx(1 / math.log2(3))  # 7/log2(3) over 7

    def test_ndcg_of_a_mixed_order_worked_by_hand(self):
        # DCG [1, 0, 2] = 1 + 0 + 3/2 = 2.5; ideal [2, 1, 0] = 3 + 1/log2(3) = 3.6309
        assert ndcg_at_k([1, 0, 2]) == pytest.approx(2.5 / (3 + 1 / math.log2(3)))

    def test_ndcg_only_counts_the_first_k(self):
        assert ndcg_at_k([0, 0, 3], k=2) == 0.0
        assert ndcg_at_k([0, 0, 0]) == 0.0  # nothing engaged: no ideal to compare with

    def test_recall_is_the_share_of_engaged_posts_in_the_first_k(self):
        assert recall_at_k([1, 0, 2, 0], k=2) == 0.5
        assert recall_at_k([0] * 10 + [3]) == 0.0
        assert recall_at_k([3] + [0] * 9 + [1, 2]) == pytest.approx(1 / 3)
        assert recall_at_k([0, 0]) == 0.0

    def test_ranked_labels_order_by_score_then_the_newer_post_as_the_feed_does(self):
        assert ranked_labels([1.0, 1.0, 2.0], [5, 9, 1], ["a", "b", "c"]) == ["c", "b", "a"]

    def test_evaluate_averages_over_queries_with_an_engaged_post_and_two_items(self):
        queries = [query(1, (0, 2)), query(2, (1, 0)), query(3, (0, 0)), query(4, (3,))]
        scores = evaluate(queries, lambda q: [float(i) for i in range(len(q.labels))])  # the last post first
        assert scores.queries == 2
        assert scores.ndcg == pytest.approx((1.0 + 1 / math.log2(3)) / 2)
        assert scores.recall == 1.0


class TestSplit:
    def test_the_latest_fraction_of_queries_is_held_out(self):
        split = split_by_fraction([query(t) for t in (5, 1, 9, 3, 7, 0, 2, 4, 6, 8)], 0.2)
        assert [q.served_ms for q in split.train] == [0, 1, 2, 3, 4, 5, 6, 7]
        assert [q.served_ms for q in split.holdout] == [8, 9] and split.holdout_from_ms == 8

    def test_queries_served_at_the_boundary_time_are_all_held_out(self):
        split = split_by_fraction([query(0), query(1), query(2, request_id=20), query(2, request_id=21),
                                   query(2, request_id=22)], 0.2)
        assert [q.served_ms for q in split.train] == [0, 1] and len(split.holdout) == 3

    def test_one_query_trains_and_none_is_held_out(self):
        split = split_by_fraction([query(0)], 0.2)
        assert len(split.train) == 1 and split.holdout == []

    def test_held_out_days_start_at_midnight(self):
        queries = [query(DAY_MS * 10 + 5), query(DAY_MS * 11 - 1), query(DAY_MS * 11), query(DAY_MS * 12 + 5)]
        split = split_by_days(queries, DAY_MS * 11)
        assert [q.served_ms for q in split.train] == [DAY_MS * 10 + 5, DAY_MS * 11 - 1]
        assert [q.served_ms for q in split.holdout] == [DAY_MS * 11, DAY_MS * 12 + 5]


class TestGate:
    def test_a_model_that_beats_the_formula_on_enough_queries_is_promoted(self):
        verdict = gate(Scores(40, 0.62, 0.8), Scores(40, 0.55, 0.7), min_queries=30, min_gain=0.0)
        assert verdict.promote and verdict.reason.startswith("promoted")

    def test_too_few_queries_refuse_whatever_the_gain(self):
        verdict = gate(Scores(29, 0.99, 1.0), Scores(29, 0.1, 0.1), min_queries=30, min_gain=0.0)
        assert not verdict.promote and "only 29 held-out queries" in verdict.reason

    def test_a_gain_not_above_the_margin_is_refused(self):
        assert not gate(Scores(40, 0.60, 0.8), Scores(40, 0.60, 0.8), 30, 0.0).promote  # a tie is not better
        assert not gate(Scores(40, 0.61, 0.8), Scores(40, 0.60, 0.8), 30, 0.02).promote
        assert gate(Scores(40, 0.63, 0.8), Scores(40, 0.60, 0.8), 30, 0.02).promote


class TestCommandLine:
    def args(self, *argv: str):
        return train_cli.training_args(train_cli.build_parser().parse_args(list(argv)), TODAY)

    def test_the_default_window_is_seven_days_ending_today(self):
        run = self.args()
        assert run.window == Window(TODAY - 6, TODAY) and run.holdout_fraction == 0.2 and run.min_queries == 30
        assert run.spark.master == "local[2]" and not run.dry_run

    def test_from_and_to_are_inclusive_utc_days(self):
        run = self.args("--from", "2026-12-01", "--to", "2026-12-03", "--holdout-days", "1", "--master",
                        "spark://h:7077", "--conf", "spark.executor.memory=2g")
        assert run.window == Window(TODAY - 6, TODAY - 4) and run.holdout_days == 1
        assert run.spark.master == "spark://h:7077" and run.spark.conf == (("spark.executor.memory", "2g"),)
        assert run.window.from_ms == (TODAY - 6) * DAY_MS and run.window.to_ms == (TODAY - 3) * DAY_MS

    @pytest.mark.parametrize("argv, message", [
        (["--from", "2026-13-01"], "--from '2026-13-01' is not a date"),
        (["--days", "0"], "--days must be at least 1"),
        (["--days", "3", "--from", "2026-12-01"], "--days cannot be combined"),
        (["--from", "2026-12-05", "--to", "2026-12-01"], "--from is after --to"),
        (["--to", "2026-12-08"], "--to is in the future"),
        (["--days", "3", "--holdout-days", "3"], "--holdout-days must be between 1 and 2"),
        (["--holdout-fraction", "1"], "--holdout-fraction must be between 0 and 1"),
        (["--min-queries", "0"], "--min-queries must be at least 1"),
        (["--min-gain", "-0.1"], "--min-gain cannot be negative"),
        (["--conf", "spark.executor.memory"], "is not KEY=VALUE"),
    ])
    def test_bad_input_is_one_line_and_exit_2(self, argv, message, capsys, monkeypatch):
        monkeypatch.setattr(train_cli, "run_training", lambda *a: pytest.fail("trained on bad input"))
        monkeypatch.setattr(cli, "today", lambda: TODAY)
        assert train_cli.main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("photos-train-ranker: error: ") and message in err

    def test_a_malformed_number_is_one_line_and_exit_2(self, capsys):
        with pytest.raises(SystemExit) as exit_:
            train_cli.main(["--days", "seven"])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.count("\n") == 1 and "--days" in err

    def test_modes_exclude_each_other(self, capsys):
        with pytest.raises(SystemExit) as exit_:
            train_cli.main(["--deactivate", "--promote", "20261207120000"])
        assert exit_.value.code == 2 and capsys.readouterr().err.count("\n") == 1

    def test_a_version_is_the_utc_second_of_the_run(self):
        from datetime import UTC, datetime

        assert train_cli.new_version(datetime(2026, 12, 7, 22, 15, 30, tzinfo=UTC)) == 20261207221530


class TestTrainingSet:
    def test_engagements_are_read_up_to_the_days_the_label_window_reaches(self):
        assert Window(10, 12).engagement_days(86_400) == [10, 11, 12, 13]
        assert Window(10, 12).engagement_days(3_600) == [10, 11, 12, 13]
        assert Window(10, 12).engagement_days(2 * 86_400 + 1) == [10, 11, 12, 13, 14, 15]

    def test_rows_are_grouped_into_queries_in_logged_order(self):
        def row(reader, request, position, post, label, features=None):
            return SimpleNamespace(reader_id=reader, request_id=request, position=position, post_id=post,
                                   served_ms=1000 + position, features=list(features or [0.5] * len(FEATURES)),
                                   label=label)

        queries = queries_of([row(1, 7, 2, 30, 0), row(1, 7, 0, 10, 3), row(1, 8, 0, 40, 1), row(2, 7, 1, 20, 2),
                              row(1, 7, 1, 99, 2, features=(1.0,))])  # a row of other features: left out
        by_key = {(q.reader_id, q.request_id): q for q in queries}
        assert by_key[(1, 7)].post_ids == (10, 30) and by_key[(1, 7)].labels == (3, 0)
        assert by_key[(1, 7)].served_ms == 1000 and len(queries) == 3


class TestSparkSettings:
    def test_the_connector_reaches_the_configured_cassandra(self):
        settings = Settings(cassandra_hosts=("10.0.0.1", "10.0.0.2"), cassandra_port=9142, cassandra_local_dc="dc1",
                            cassandra_username="spark", cassandra_password="pw", stack_dir="/tmp/stack")
        conf = session_conf(settings, SparkOptions(), ["/jars/a.jar", "/jars/b.jar"])
        assert conf["spark.cassandra.connection.host"] == "10.0.0.1,10.0.0.2"
        assert conf["spark.cassandra.connection.port"] == "9142"
        assert conf["spark.cassandra.connection.localDC"] == "dc1"
        assert (conf["spark.cassandra.auth.username"], conf["spark.cassandra.auth.password"]) == ("spark", "pw")
        assert conf["spark.jars"] == "/jars/a.jar,/jars/b.jar"
        assert conf["spark.local.dir"] == "/tmp/stack/spark/tmp" and conf["spark.driver.host"] == "127.0.0.1"

    def test_a_cluster_master_keeps_spark_defaults_and_conf_overrides_last(self):
        conf = session_conf(Settings(), SparkOptions("spark://h:7077", "x", (("spark.sql.shuffle.partitions", "64"),)),
                            [])
        assert "spark.driver.host" not in conf and conf["spark.sql.shuffle.partitions"] == "64"
        assert "spark.jars" not in conf  # none fetched: the jars come from spark.jars.packages, say
        assert "spark.cassandra.auth.username" not in conf

    def test_pem_tls_files_are_refused_with_what_to_do(self):
        settings = Settings(cassandra_tls=True, cassandra_tls_ca_file="/ca.pem")
        with pytest.raises(SparkSetupError, match=r"trustStore\.path"):
            session_conf(settings, SparkOptions(), [])
        assert session_conf(Settings(cassandra_tls=True), SparkOptions(), [])[
            "spark.cassandra.connection.ssl.enabled"] == "true"

    def test_tables_align_numbers_right(self):
        assert format_table(["name", "n"], [["a", 5], ["bb", 0.25]]).splitlines() == [
            "name  n", "----  ------", "a          5", "bb    0.2500"]


def test_training_queries_learn_nothing_from_engagements_made_in_the_held_out_part():
    early = Query(1, 1, 1_000, (10, 11, 12), ((0.0,),) * 3, (2, 3, 1),
                  acts=(((1_500, 2),), ((1_200, 1), (5_000, 3)), ((6_000, 1),)))
    late = Query(2, 2, 5_000, (20, 21), ((0.0,),) * 2, (2, 0), acts=(((5_500, 2),), ()))
    split = split_by_days([early, late], 5_000)
    assert [q.labels for q in split.train] == [(2, 1, 0)]  # the comment at 5,000 and the open at 6,000 came later
    assert split.holdout == [late]  # judged by everything readers did


def test_rows_carry_their_acts_into_the_query():
    row = SimpleNamespace(reader_id=1, request_id=7, position=0, post_id=10, served_ms=100, label=2,
                          features=[0.5] * len(FEATURES), acts=[SimpleNamespace(at_ms=150, grade=2)])
    (query,) = queries_of([row])
    assert query.acts == (((150, 2),),) and query.labelled_before(150).labels == (0,)
