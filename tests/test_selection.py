"""The references' example orders (tgazsr_cli/data/selection.py): RobustVLM's seeded stream and named id lists."""

from __future__ import annotations

import random

import pytest

from tgazsr_cli.data.selection import match_subset, stream_indices, subset_keys
from tgazsr_cli.errors import RuntimeFailure, UsageError


def test_stream_is_deterministic_distinct_and_in_range():
    first = stream_indices(10_000, 1000, 0)
    assert first == stream_indices(10_000, 1000, 0)
    assert len(first) == 1000 and len(set(first)) == 1000 and all(0 <= i < 10_000 for i in first)
    assert first != stream_indices(10_000, 1000, 1)
    assert first != list(range(1000))  # shuffled, not the file order


def test_stream_matches_a_hand_computed_small_case():
    # Five examples, one shard, buffer 10,000: all five are buffered, then drawn with random.Random(0).randint(0, n-1)
    # for n = 5, 4, 3, 2, 1, the drawn slot refilled by the last buffered example (webdataset filters.py:183-218).
    draws = random.Random(0)
    assert [draws.randint(0, n - 1) for n in (5, 4, 3, 2, 1)] == [3, 3, 0, 1, 0]
    # [0,1,2,3,4] -k3-> 3, [0,1,2,4] -k3-> 4, [0,1,2] -k0-> 0, [2,1] -k1-> 1, [2] -> 2
    assert stream_indices(5, 5, 0) == [3, 4, 0, 1, 2]
    assert stream_indices(5, 3, 0) == [3, 4, 0]


def test_stream_with_a_small_buffer_draws_while_reading():
    # Buffer 4 (initial 4): read 0 and 1, then 2 and 3, draw; then read one and draw one per step.
    draws = random.Random(1)
    first = draws.randint(0, 3)                 # from [0, 1, 2, 3]
    held = [0, 1, 2, 3]
    out = [held[first]]
    held[first] = held[-1]
    held.pop()
    held.append(4)                              # the next example read
    second = draws.randint(0, 3)
    out.append(held[second])
    assert stream_indices(30, 2, 1, buffer=4, workers=1) == out


def test_stream_deals_shards_to_workers_and_takes_their_batches_in_turn():
    # Shards [0-3], [4-6], [7-8], [9] go to workers 0..3 (split_by_worker); each worker shuffles its own examples
    # with a fresh Random(seed) and batches them; the loader takes one batch per worker in turn.
    got = stream_indices(10, 10, 0, shards=[4, 3, 2, 1], batch=2)
    assert sorted(got) == list(range(10))
    batches = [got[0:2], got[2:4], got[4:6], got[6:7], got[7:9], got[9:10]]
    assert set(batches[0]) | set(batches[4]) == {0, 1, 2, 3}   # worker 0, rounds 1 and 2
    assert set(batches[1]) | set(batches[5]) == {4, 5, 6}      # worker 1
    assert set(batches[2]) == {7, 8} and batches[3] == [9]     # workers 2 and 3, one batch each
    one_worker = stream_indices(4, 4, 0, shards=[4], workers=1)
    assert got[0:2] + got[7:9] == one_worker                     # worker 0 alone draws the same order


def test_stream_stops_after_count_over_batch_plus_two_batches():
    # zeroshot_classification.py:141 stops at batch number count // bs + 2: with one example per shard and 4 workers,
    # batches hold 2 examples, so only 3 batches (6 examples) are gathered although 8 were asked for.
    assert len(stream_indices(8, 8, 0, shards=[1] * 8, batch=50)) == 6


def test_stream_refuses_shards_that_do_not_add_up():
    with pytest.raises(UsageError, match="do not add up"):
        stream_indices(10, 5, 0, shards=[4, 4])
    with pytest.raises(UsageError, match="count"):
        stream_indices(10, -1, 0)


def test_robustbench_subset_keys():
    keys = subset_keys("robustbench-imagenet-5000")
    assert len(keys) == 5000 and len(set(keys)) == 5000
    # RobustBench/robustbench@e67e4225facde47be6a41ed78b576076e8b90cc5 helper_files/imagenet_test_image_ids.txt:1
    assert keys[0] == "n09468604/ILSVRC2012_val_00015253.JPEG"
    assert keys[-1].endswith("ILSVRC2012_val_00025432.JPEG")
    with pytest.raises(UsageError, match="did you mean 'robustbench-imagenet-5000'"):
        subset_keys("robustbench-imagenet-500")


def test_match_subset_by_validation_number_in_key_order():
    keys = ["n02/ILSVRC2012_val_00000007.JPEG", "n01/ILSVRC2012_val_00000002.JPEG"]
    folder_style = ["n01/ILSVRC2012_val_00000001.JPEG", "n01/ILSVRC2012_val_00000002.JPEG", None,
                    "n02/ILSVRC2012_val_00000007.JPEG"]
    flat_style = ["ILSVRC2012_val_00000007_n02.JPEG", "ILSVRC2012_val_00000002_n01.JPEG"]
    assert match_subset(folder_style, keys) == [3, 1]
    assert match_subset(flat_style, keys) == [0, 1]


def test_match_subset_names_the_missing_images():
    keys = [f"n01/ILSVRC2012_val_{n:08d}.JPEG" for n in range(1, 7)]
    with pytest.raises(RuntimeFailure, match=r"5 of the subset's 6 images are not in this copy.*00000002.*, \.\.\."):
        match_subset(["ILSVRC2012_val_00000001.JPEG"], keys)
    with pytest.raises(RuntimeFailure, match="keeps no ILSVRC2012_val_"):
        match_subset([None, "image_0.jpg"], keys[:1])
