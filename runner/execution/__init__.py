"""Running a plan: the executor, the run's data, the state file and the progress line."""
