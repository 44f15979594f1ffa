"""Drop-in use of emollm's parts inside other multimodal models."""
