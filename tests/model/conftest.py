import numpy as np
import pytest

from emollm.model import from_named


@pytest.fixture(scope="session")
def tiny():
    """``(model, processor)`` of emollm-tiny, built once; tests must not change its weights."""
    return from_named("emollm-tiny", seed=0)


@pytest.fixture(scope="session")
def media():
    """Random media for the tiny processor: images of odd sizes, videos of 20 and 5 frames, 0.7 s
    and 1.5 s of audio (padded / truncated to the extractor's 1 s)."""
    rng = np.random.default_rng(0)
    return {
        "images": [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(3)],
        "videos": [rng.integers(0, 256, (t, 32, 32, 3), dtype=np.uint8) for t in (20, 5)],
        "audio": [rng.standard_normal(n).astype(np.float32) for n in (11200, 24000)],
    }
