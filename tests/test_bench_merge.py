"""``salespipe bench --merge``: re-running one measurement keeps the others, each saying
when and at which commit it was measured (the full bench takes hours; see test_bench.py)."""

from salespipe_bench import _merge_previous


def test_merge_keeps_what_is_not_rerun_and_dates_it():
    previous = {
        "generated_at": "2026-11-20T10:00:00+00:00",
        "machine": {"git_commit": "31a39b8"},
        "measurements": {
            "memory": {"met": True},
            "history": {"met": False, "finished_at": "2026-11-19T09:00:00+00:00", "git_commit": "aaaaaaa"},
            "latency": {"met": False, "median_seconds": 82},
        },
    }
    results = {"measurements": {}}
    _merge_previous(results, previous, rerun=["latency"])
    assert set(results["measurements"]) == {"memory", "history"}
    assert results["measurements"]["memory"] == {"met": True, "bench_started_at": "2026-11-20T10:00:00+00:00",
                                                 "git_commit": "31a39b8"}
    assert results["measurements"]["history"] == previous["measurements"]["history"]  # its own record wins
