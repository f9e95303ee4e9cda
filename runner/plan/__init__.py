"""The plan: which jobs run, in which order, with which limits (pure), and its read-only remote check."""
