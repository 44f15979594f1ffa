import math

import pytest
import torch

from emollm.projector import MVPProjector
from emollm.projector.video import segment_events
from tests.ops.helpers import tokens


def _model():
    torch.manual_seed(0)
    return MVPProjector(16, 8, stages=((16, 3), (8, 3), (4, 3)))  # 28 tokens per event


def _clip(b, t, n=32, d=16, scenes=3, seed=0):
    """Frames from a few 'scenes' in time order, each scene a base frame plus noise."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(b, scenes, n, d, generator=g)
    which = torch.arange(t) * scenes // t
    return base[:, which] + 0.05 * torch.randn(b, t, n, d, generator=g)


@pytest.mark.not_interpreted
def test_events_cover_frames_in_time_order(backend):
    means = _clip(1, 40)[0].mean(1)
    events = segment_events(means, 40)
    assert len(events) == math.ceil(40 / 16)
    assert sorted(f for ev in events for f in ev) == list(range(40))
    assert [ev[0] for ev in events] == sorted(ev[0] for ev in events)
    assert segment_events(means, 9) == [list(range(9))]


@pytest.mark.not_interpreted
@pytest.mark.parametrize("mode", ["expand", "hierarchical"])
def test_variable_length_batch(backend, mode):
    m = _model()
    frames = _clip(3, 40)
    frame_mask = torch.zeros(3, 40, dtype=torch.bool)
    for i, t in enumerate((40, 17, 5)):
        frame_mask[i, :t] = True
    out, mask = m.forward_video(frames, frame_mask, mode=mode)
    p = m.num_tokens
    assert out.shape == (3, 3 * p, 8)
    assert mask.sum(1).tolist() == [3 * p, 2 * p, p]
    assert (out[~mask] == 0).all() and torch.isfinite(out).all()
    # Each sample alone gives the same tokens: padding frames and other samples change nothing.
    for i, t in enumerate((40, 17, 5)):
        alone, _ = m.forward_video(frames[i : i + 1, :t], mode=mode)
        torch.testing.assert_close(out[i : i + 1, : alone.shape[1]], alone, rtol=1e-4, atol=1e-5)


def test_expand_event_is_the_projector_over_its_frames(backend):
    m = _model()
    frames = _clip(1, 12)
    out, mask = m.forward_video(frames)
    assert mask.all()
    torch.testing.assert_close(out, m(frames.reshape(1, -1, 16)), rtol=1e-5, atol=1e-6)


@pytest.mark.not_interpreted
def test_gradients(backend):
    m = _model()
    frames = _clip(2, 20).requires_grad_()
    out, mask = m.forward_video(frames, mode="expand")
    out[mask].sum().backward()
    assert frames.grad.abs().sum() > 0
    assert all(p.grad is not None for p in m.parameters())


def test_bad_input():
    m = _model()
    with pytest.raises(ValueError, match="mode must be"):
        m.forward_video(_clip(1, 4), mode="slow")
    with pytest.raises(ValueError, match=r"frames must be \[B,T,N,D\]"):
        m.forward_video(tokens(1, 4, 16))
    bad = torch.tensor([[True, False, True, False]])
    with pytest.raises(ValueError, match="prefix"):
        m.forward_video(_clip(1, 4), bad)
    with pytest.raises(ValueError, match="frame_mask must be a bool tensor"):
        m.forward_video(_clip(1, 4), torch.ones(1, 3, dtype=torch.bool))
