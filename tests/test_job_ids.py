"""The compact id index of a job's input: membership, first lines, runs and merges."""

from __future__ import annotations

import itertools
import random
import tracemalloc

import pytest

from azml_client._bulk._jobs._ids import IdIndex, id_key


def test_new_ids_are_recorded_and_repeats_name_the_first_line() -> None:
    index = IdIndex()
    assert index.add("a", 1) is None
    assert index.add(7, 2) is None
    assert index.add("a", 5) == 1
    assert index.add(7, 9) == 2
    assert "a" in index and 7 in index and "b" not in index
    assert index.line_of("a") == 1 and index.line_of("b") is None
    assert len(index) == 2


@pytest.mark.parametrize(
    ("one", "other"),
    [("1", 1), ("", 0), ("i1", 1), ("s", "s "), ("id-\udfff", "id-\udffe"), (-1, 1)],
)
def test_ids_that_differ_have_different_keys(one: str | int, other: str | int) -> None:
    assert id_key(one) != id_key(other)
    index = IdIndex()
    assert index.add(one, 1) is None
    assert index.add(other, 2) is None


def test_keys_fit_64_bits_and_are_stable() -> None:
    assert 0 <= id_key("a") < 2**64
    assert id_key("a") == id_key("a") and id_key(10**30) == id_key(10**30)


def test_many_inserts_merge_into_doubling_runs_without_false_negatives() -> None:
    rng = random.Random(5)
    ids: list[str | int] = [f"id-{i}" for i in range(3_000)] + list(range(3_000))
    rng.shuffle(ids)
    index = IdIndex(fresh=16)
    for line, item_id in enumerate(ids, start=1):
        assert index.add(item_id, line) is None, item_id
        runs = index.runs
        assert all(a > b for a, b in itertools.pairwise(runs)), runs  # sizes fall
    assert len(index) == len(ids)
    assert len(index.runs) <= 10  # about log2(6000 / 16)
    for line, item_id in enumerate(ids, start=1):  # every id found, with its own line
        assert index.line_of(item_id) == line
        assert index.add(item_id, 10**6) == line
    assert len(index) == len(ids)  # repeats are not recorded
    for i in range(3_000, 6_000):
        assert f"id-{i}" not in index and i not in index


def test_a_repeat_is_found_whether_fresh_or_merged() -> None:
    index = IdIndex(fresh=4)
    for i in range(100):
        assert index.add(i, i + 1) is None
        assert index.add(i, 0) == i + 1  # just added (the fresh dict, or a run just built)
        assert index.add(0, 0) == 1  # the oldest
    assert len(index) == 100


def test_memory_is_16_bytes_an_id_in_the_runs() -> None:
    n = 8_000
    tracemalloc.start()
    try:
        index = IdIndex(fresh=256)
        for i in range(n):
            index.add(f"item-{i}", i + 1)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(index) == n
    # A key and a line in arrays, plus the small fresh dict (a dict of the ids is ~100 bytes
    # an id); a merge holds the runs it merges and the new one, briefly.
    assert current < 20 * n, current
    assert peak < 36 * n, peak
