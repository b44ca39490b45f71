"""A finished day's week follows it: ``week_after_day``'s decision on a real (temporary)
Dagster instance, with the runs' start and end times placed by their run events.

The landing sensor queues the week's run with the day's (tests/test_landing_sensor.py);
the run status sensor covers every other day (UI, Lambda, re-execution) and must not
build a week twice."""

import datetime as dt

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType
from dagster._core.utils import make_new_run_id

from salespipe_assets.sensors import _week_request

DAY, WEEK = "2024-01-09", "2024-01-07"
T0 = dt.datetime(2024, 1, 9, 6, tzinfo=dt.timezone.utc)


def _at(seconds: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def _run(instance, job: str, partition: str, started: int | None = None, ended: int | None = None) -> dg.DagsterRun:
    run = instance.add_run(dg.DagsterRun(job_name=job, run_id=make_new_run_id(), status=dg.DagsterRunStatus.NOT_STARTED,
                                         tags={"dagster/partition": partition}))
    for kind, at in ((DagsterEventType.PIPELINE_START, started), (DagsterEventType.PIPELINE_SUCCESS, ended)):
        if at is not None:
            instance.run_storage.handle_run_event(run.run_id, DagsterEvent(kind.value, job), update_timestamp=_at(at))
    return instance.get_run_by_id(run.run_id)


def _decide(instance, day_run: dg.DagsterRun):
    context = dg.build_run_status_sensor_context(
        sensor_name="week_after_day", dagster_instance=instance, dagster_run=day_run,
        dagster_event=DagsterEvent(DagsterEventType.PIPELINE_SUCCESS.value, "daily_job"))
    return _week_request(context)


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_a_day_without_a_build_of_its_week_requests_one(instance):
    day = _run(instance, "daily_job", DAY, started=0, ended=30)
    request = _decide(instance, day)
    assert isinstance(request, dg.RunRequest) and request.partition_key == WEEK
    assert request.run_key == f"{WEEK}:{day.run_id}"


def test_a_build_waiting_in_the_queue_covers_the_day(instance):
    day = _run(instance, "daily_job", DAY, started=0, ended=30)
    _run(instance, "weekly_job", WEEK)  # created, not started: e.g. queued by the landing sensor behind the day
    skip = _decide(instance, day)
    assert isinstance(skip, dg.SkipReason) and "already has a build waiting" in skip.skip_message


def test_a_build_started_after_the_day_ended_covers_it(instance):
    day = _run(instance, "daily_job", DAY, started=0, ended=30)
    _run(instance, "weekly_job", WEEK, started=31, ended=45)  # the chain's run, dequeued at the day's end
    skip = _decide(instance, day)
    assert isinstance(skip, dg.SkipReason) and "rebuilt after this day's run ended" in skip.skip_message


def test_a_build_that_started_before_the_day_ended_does_not(instance):
    day = _run(instance, "daily_job", DAY, started=0, ended=30)
    _run(instance, "weekly_job", WEEK, started=10, ended=25)  # read the lake before this day was staged
    _run(instance, "weekly_job", "2024-01-14", started=40)      # another week's build says nothing
    request = _decide(instance, day)
    assert isinstance(request, dg.RunRequest) and request.partition_key == WEEK
