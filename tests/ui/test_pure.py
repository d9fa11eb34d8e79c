"""The dashboard's pure parts with no server: access rules, the rate history, the view model."""

from __future__ import annotations

import pytest

from gristmill.observe.shape import (
    ConsumerState,
    DelayedState,
    GroupState,
    LeaseState,
    Snapshot,
    StreamState,
)
from gristmill.ui.access import ActionRules, action_refusal, read_refusal, start_problem
from gristmill.ui.history import History, RatePoint
from gristmill.ui.model import Topology, graph, live_view, public_address, thin


def _group(stream: str, group: str, read: int | None, *, lag: int = 0, dead: int = 0) -> GroupState:
    consumers = (ConsumerState("vm-1", 2, 150),)
    return GroupState(stream, group, lag, 2, 900, read, consumers, dead, 0)


def _snapshot(taken_ms: int, read: int, *, dead: int = 0) -> Snapshot:
    streams = (
        StreamState("orders", 10, f"{taken_ms}-0", (_group("orders", "billing", read, dead=dead),)),
        StreamState("invoices", 4, "1-0", (_group("invoices", "audit", None, lag=4),)),
    )
    delayed = (DelayedState("orders", 3, False, taken_ms + 5_000),)
    return Snapshot(taken_ms, streams, delayed, (LeaseState("sweeper", "vm:1", 1500),))


# -- access ---------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "LOCALHOST"])
def test_loopback_hosts_need_no_token_for_actions(host: str) -> None:
    rules = ActionRules(host, allow_actions=True)
    assert start_problem(rules) is None
    assert action_refusal(rules, "127.0.0.1:8090", None, "") is None


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "dash.example.com"])
def test_other_hosts_with_actions_need_a_token_to_start(host: str) -> None:
    problem = start_problem(ActionRules(host, allow_actions=True))
    assert problem is not None
    assert "needs a token" in problem[0]
    assert "--token" in problem[1]
    assert start_problem(ActionRules(host, allow_actions=True, token="s3cret")) is None
    assert start_problem(ActionRules(host)) is None  # read-only needs nothing


def test_an_empty_token_is_refused_at_start() -> None:
    assert start_problem(ActionRules("0.0.0.0", allow_actions=True, token="  ")) is not None


def test_actions_check_the_switch_the_token_and_the_origin() -> None:
    off = ActionRules("0.0.0.0")
    assert "--allow-actions" in (action_refusal(off, "dash:8090", None, "t") or "")
    rules = ActionRules("0.0.0.0", allow_actions=True, token="right")
    assert action_refusal(rules, "dash:8090", None, "right") is None
    assert action_refusal(rules, "dash:8090", "http://dash:8090", "right") is None
    assert action_refusal(rules, "dash:8090", None, "wrong") == "wrong token"
    assert "header" in (action_refusal(rules, "dash:8090", None, None) or "")
    assert "another site" in (action_refusal(rules, "dash:8090", "http://evil:80", "right") or "")


def test_a_loopback_dashboard_answers_only_loopback_names() -> None:
    rules = ActionRules("127.0.0.1")
    for host_header in ("127.0.0.1:8090", "localhost:8090", "[::1]:8090", "localhost"):
        assert read_refusal(rules, host_header) is None
    assert read_refusal(rules, "rebound.example.com:8090") is not None
    assert read_refusal(ActionRules("0.0.0.0"), "dash.example.com:8090") is None


def test_the_public_address_drops_user_password_and_query() -> None:
    url = "rediss://app:hunter2@redis.internal:6380/3?ssl_cert_reqs=required&password=x"
    assert public_address(url) == "rediss://redis.internal:6380/3"
    assert public_address("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


# -- history --------------------------------------------------------------------------------


def _rate(snapshot: Snapshot, stream: str = "orders", group: str = "billing") -> float | None:
    state = snapshot.group(stream, group)
    assert state is not None
    return state.rate_per_s


def test_rates_come_from_consecutive_snapshots() -> None:
    history = History(keep=3)
    assert _rate(history.add(_snapshot(1_000, 100))) is None
    assert _rate(history.add(_snapshot(3_000, 140))) == 20.0
    history.add(_snapshot(4_000, 150))
    history.add(_snapshot(5_000, 170))
    assert len(history) == 3  # the oldest fell out
    points = [(p.at_ms, p.per_s) for p in history.series("orders", "billing")]
    assert points == [(3_000, 20.0), (4_000, 10.0), (5_000, 20.0)]
    assert history.series("invoices", "audit") == []  # never read: no rate
    assert history.all_series() == {("orders", "billing"): history.series("orders", "billing")}


def test_a_clock_going_back_gives_no_rate_and_is_not_kept() -> None:
    history = History()
    history.add(_snapshot(5_000, 100))
    assert _rate(history.add(_snapshot(4_000, 120))) is None
    assert len(history) == 1


def test_a_history_keeps_at_least_two() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        History(keep=1)


# -- the view model -------------------------------------------------------------------------


def test_the_live_view_carries_status_numbers_series_and_totals() -> None:
    history = History()
    history.add(_snapshot(1_000, 100, dead=2))
    latest = history.add(_snapshot(2_000, 130, dead=2))
    view = live_view(latest, history.all_series())
    (orders, invoices) = view["streams"]
    billing = orders["groups"][0]
    assert (billing["rate_per_s"], billing["lag"], billing["pending"]) == (30.0, 0, 2)
    assert billing["series"] == [[2_000, 30.0]]
    assert billing["consumers"] == [{"name": "vm-1", "pending": 2, "idle_ms": 150}]
    assert invoices["groups"][0]["series"] == []
    assert view["dead_lanes"] == [{"stream": "orders", "group": "billing", "entries": 2}]
    assert view["delayed"][0]["next_due_in_ms"] == 5_000
    assert view["totals"] == {
        "streams": 2,
        "groups": 2,
        "lag": 4,
        "pending": 4,
        "dead_letters": 2,
        "rate_per_s": 30.0,
    }
    assert view["leases"] == [{"role": "sweeper", "holder": "vm:1", "ttl_ms": 1500}]


def test_the_graph_joins_streams_groups_and_the_apps_writes_left_to_right() -> None:
    snapshot = _snapshot(1_000, 100)
    topology = Topology(
        writes={"billing": ("invoices", "not-created-yet")}, sources={"shop.tick": ("orders",)}
    )
    drawn = graph(snapshot, topology)
    column = {node["id"]: node["x"] for node in drawn["nodes"]}
    assert column["source:shop.tick"] < column["stream:orders"] < column["group:billing"]
    assert column["group:billing"] < column["stream:invoices"] < column["group:audit"]
    assert "stream:not-created-yet" not in column
    (read,) = [e for e in drawn["edges"] if e["to"] == "group:audit"]
    assert (read["from"], read["lag"], read["pending"]) == ("stream:invoices", 4, 2)
    assert {"from": "group:billing", "to": "stream:invoices"} in drawn["edges"]
    assert drawn["width"] > max(column.values())


def test_without_apps_the_graph_has_only_read_edges() -> None:
    drawn = graph(_snapshot(1_000, 100))
    assert {(e["from"], e["to"]) for e in drawn["edges"]} == {
        ("stream:orders", "group:billing"),
        ("stream:invoices", "group:audit"),
    }


def test_a_cycle_does_not_loop_the_layout() -> None:
    snapshot = _snapshot(1_000, 100)
    drawn = graph(snapshot, Topology(writes={"billing": ("orders",)}))  # billing feeds itself
    assert len(drawn["nodes"]) == 4


def test_long_series_are_thinned_to_averages_ending_at_the_newest_point() -> None:
    series = [RatePoint(1_000 * n, float(n)) for n in range(1, 11)]
    assert thin(series, 20) == [[1_000 * n, float(n)] for n in range(1, 11)]
    assert thin(series, 4) == [[1_000, 1.0], [4_000, 3.0], [7_000, 6.0], [10_000, 9.0]]
    assert thin([], 4) == []
