"""Reading and checking jobs.yaml: YAML with positions, ${VAR}, durations, the schema, the checks, problems."""
