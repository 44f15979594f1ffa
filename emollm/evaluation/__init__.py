"""emollm.evaluation (issue 6)."""
