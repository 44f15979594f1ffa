"""emollm.prompting (issue 6)."""
