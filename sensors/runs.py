"""What the sensors ask the Dagster instance about runs."""

from dagster import DagsterRunStatus, JobDefinition, RunsFilter, SensorEvaluationContext

WAITING = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING]


def run_waiting(context: SensorEvaluationContext, job: JobDefinition) -> bool:
    """Whether a run of `job` is queued or starting: a long-lived job's successor is ready,
    and requesting another would only stack twins behind it."""
    return context.instance.get_runs_count(RunsFilter(job_name=job.name, statuses=WAITING)) > 0
