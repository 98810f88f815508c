"""benchmarks.ab's round order: every server measured in every place alike, none twice in a row."""
from __future__ import annotations

from itertools import pairwise

from benchmarks.ab import round_order


def test_every_server_takes_every_place_once_per_cycle() -> None:
    names = ["A", "B", "B'"]
    rounds = [round_order(names, r) for r in range(len(names))]
    for place in range(len(names)):
        assert sorted(order[place] for order in rounds) == sorted(names)
    assert all(sorted(order) == sorted(names) for order in rounds)


def test_no_server_is_measured_twice_in_a_row_across_rounds() -> None:
    # the old forwards-then-backwards order measured A and B' twice in a row, B never: warm vs idle
    names = ["A", "B", "B'"]
    sequence = [name for r in range(7) for name in round_order(names, r)]
    assert all(a != b for a, b in pairwise(sequence))


def test_two_servers_alternate_who_goes_first() -> None:
    assert [round_order(["A", "B"], r)[0] for r in range(4)] == ["A", "B", "A", "B"]
