"""What a run or a plan looks like to people and machines: JSON report, summary, JUnit, GitHub, plan output."""
