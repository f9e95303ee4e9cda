"""A finished (or saved) run as one frozen model, and the state file read back into it.

`model` holds `RunResult`/`JobResult`/`TaskOutcome` and `JobState`; `read` reads a saved
state file (checked, or fast and unchecked); `records` are its typed records and turn a
saved run into a `RunResult`; `history` learns durations from earlier runs. Every report
renders a `RunResult`; nothing here imports the engine or the HTTP client.
"""
