"""emollm.training (issue 6)."""
