"""EmoLLM fine-tuning: settings, data order per strategy, and the Trainer run.

``emollm.training.train.train(config)`` runs it (kept out of this module's imports: it pulls in
transformers); :func:`load_config` builds a :class:`TrainConfig` from the preset, YAML and flags.
"""

from emollm.training.config import STRATEGIES, TrainConfig, load_config

__all__ = ["STRATEGIES", "TrainConfig", "load_config"]
