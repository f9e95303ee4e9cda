"""Before a run, against Celonis: the plan's pools and jobs checked, task names resolved to ids,
and what a resume still has to run. Above runner/api/ and runner/plan/, which stay apart."""
