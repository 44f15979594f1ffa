"""MVPConfig: validation, JSON round trip, and the projector built from it."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from emollm.projector import MVPConfig, MVPProjector, stage_k


def test_defaults_are_the_paper_setup():
    cfg = MVPConfig()
    assert cfg.stages == ((64, 5), (32, 3), (16, 3))
    assert (cfg.tau, cfg.alpha, cfg.gcn_layers, cfg.combine) == (0.1, 1.0, 2, "sum")
    assert cfg.num_tokens == 112
    assert MVPConfig(combine="concat").num_tokens == 224
    assert MVPConfig(stages=[[16, 3], [8, 3]]).num_tokens == 24


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        MVPConfig().tau = 0.5


def test_normalises_json_and_numpy_values():
    cfg = MVPConfig(stages=[[np.int64(8), 3], (4, np.int32(2))], tau=np.float32(0.5), alpha=2, gcn_layers=np.int64(1))
    assert cfg.stages == ((8, 3), (4, 2)) and all(type(v) is int for stage in cfg.stages for v in stage)
    assert type(cfg.tau) is float and type(cfg.alpha) is float and type(cfg.gcn_layers) is int
    assert cfg == MVPConfig(stages=((8, 3), (4, 2)), tau=0.5, alpha=2.0, gcn_layers=1)


def test_small_stage_k_is_stored_as_it_runs():
    # One place for Chat-UniVi's rule: the config stores the k the projector runs with, so a saved
    # and reloaded config builds the same projector, and equal configs build equal projectors.
    cfg = MVPConfig(stages=((8, 3), (2, 5), (4, 9)))
    assert cfg.stages == ((8, 3), (2, stage_k(2, 5)), (4, stage_k(4, 9))) == ((8, 3), (2, 1), (4, 2))
    assert cfg == MVPConfig(stages=((8, 3), (2, 1), (4, 2)))
    assert MVPConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("settings, error, match", [
    ({"stages": "64,5"}, TypeError, "stages must be a sequence"),
    ({"stages": 64}, TypeError, "stages must be a sequence"),
    ({"stages": ()}, ValueError, "at least one"),
    ({"stages": [(64, 5, 1)]}, TypeError, r"every stage must be a \(num_clusters, k\) pair of ints"),
    ({"stages": [(64.0, 5)]}, TypeError, "pair of ints, got"),
    ({"stages": [(64, True)]}, TypeError, "pair of ints, got"),
    ({"stages": [(0, 3)]}, ValueError, "num_clusters >= 1 and k >= 1"),
    ({"stages": [(8, 0)]}, ValueError, "num_clusters >= 1 and k >= 1"),
    ({"tau": "0.1"}, TypeError, "tau must be a real number"),
    ({"tau": 1.5}, ValueError, r"tau must lie in \[0, 1\], got 1.5"),
    ({"tau": -0.1}, ValueError, r"tau must lie in \[0, 1\]"),
    ({"tau": math.nan}, ValueError, r"tau must lie in \[0, 1\], got nan"),
    ({"alpha": None}, TypeError, "alpha must be a real number"),
    ({"alpha": math.inf}, ValueError, "alpha must be finite, got inf"),
    ({"gcn_layers": 2.0}, TypeError, "gcn_layers must be an int"),
    ({"gcn_layers": 0}, ValueError, "gcn_layers must be >= 1, got 0"),
    ({"combine": "mean"}, ValueError, "combine must be 'sum' or 'concat', got 'mean'"),
])
def test_validation(settings, error, match):
    with pytest.raises(error, match=match) as info:
        MVPConfig(**settings)
    assert "\n" not in str(info.value)
    with pytest.raises(error, match=match):  # the projector validates through its config
        MVPProjector(8, 8, **settings)


def test_json_round_trip():
    cfg = MVPConfig(stages=((48, 5), (24, 3)), tau=0.25, alpha=0.5, gcn_layers=3, combine="concat")
    as_dict = cfg.to_dict()
    assert as_dict == {"stages": [[48, 5], [24, 3]], "tau": 0.25, "alpha": 0.5, "gcn_layers": 3, "combine": "concat"}
    assert MVPConfig.from_dict(json.loads(json.dumps(as_dict))) == cfg
    assert MVPConfig.from_dict(MVPConfig().to_dict()) == MVPConfig()


def test_from_dict_fills_missing_keys_with_defaults():
    assert MVPConfig.from_dict({}) == MVPConfig()
    assert MVPConfig.from_dict({"tau": 0.3}) == MVPConfig(tau=0.3)


def test_from_dict_rejects_unknown_keys_naming_them():
    with pytest.raises(ValueError, match=r"unknown MVPProjector settings \['clusters', 'temperature'\]; known: "
                                         r"stages, tau, alpha, gcn_layers, combine"):
        MVPConfig.from_dict({"tau": 0.3, "temperature": 1.0, "clusters": 8})
    with pytest.raises(TypeError, match="must be a mapping"):
        MVPConfig.from_dict([("tau", 0.3)])


def test_projector_takes_its_settings_from_the_config():
    cfg = MVPConfig(stages=((8, 3), (4, 9)), tau=0.2, alpha=0.5, gcn_layers=1, combine="concat")
    m = MVPProjector(16, 8, cfg)
    assert m.config is cfg
    assert (m.stages, m.tau, m.alpha, m.combine, m.num_tokens) == (((8, 3), (4, 2)), 0.2, 0.5, "concat", 24)
    assert all(len(gcn.weights) == 1 for gcn in m.relation)
    assert m(torch.randn(2, 20, 16)).shape == (2, 24, 8)


def test_old_keyword_construction_still_works():
    m = MVPProjector(1024, 4096, tau=0.2)
    assert m.config == MVPConfig(tau=0.2) and m.num_tokens == 112
    m = MVPProjector(16, 16, stages=[(8, 3), (4, 2)], alpha=0.0, gcn_layers=3, combine="sum")
    assert m.config == MVPConfig(stages=((8, 3), (4, 2)), alpha=0.0, gcn_layers=3)
    assert MVPProjector(16, 16).config == MVPConfig()


def test_keywords_override_a_given_config():
    base = MVPConfig(stages=((8, 3),), tau=0.3)
    m = MVPProjector(16, 16, base, combine="concat")
    assert m.config == MVPConfig(stages=((8, 3),), tau=0.3, combine="concat") and base.combine == "sum"


def test_projector_rejects_unknown_settings_and_positional_stages():
    with pytest.raises(TypeError, match="clusters"):
        MVPProjector(8, 8, clusters=8)
    with pytest.raises(TypeError, match="config must be an MVPConfig, got tuple"):
        MVPProjector(8, 8, ((8, 3),))


def test_same_config_same_projector():
    # A projector rebuilt from its config's dict has the same parameters and gives the same output.
    cfg = MVPConfig(stages=((8, 3), (4, 5)), gcn_layers=3, combine="concat")
    torch.manual_seed(0)
    a = MVPProjector(16, 8, cfg)
    torch.manual_seed(0)
    b = MVPProjector(16, 8, MVPConfig.from_dict(json.loads(json.dumps(a.config.to_dict()))))
    assert b.config == a.config
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 30, 16)
    torch.testing.assert_close(a(x), b(x), rtol=0, atol=0)
