import pytest
import torch

from emollm.model import ATTN_IMPLEMENTATIONS, attention, attn_implementation_status, default_attn_implementation


def test_cpu_gets_sdpa_and_no_flash():
    status = attn_implementation_status("cpu")
    assert set(status) == set(ATTN_IMPLEMENTATIONS)
    assert status["eager"] == (True, "") and status["sdpa"] == (True, "")
    assert status["flash_attention_2"] == (False, "flash_attention_2 runs on CUDA only")
    assert default_attn_implementation("cpu") == default_attn_implementation(None) == "sdpa"


@pytest.mark.parametrize("installed", [True, False])
def test_cuda_gets_flash_only_where_installed(monkeypatch, installed):
    # The choice needs no GPU: CUDA is named, flash-attn's presence is what is faked.
    monkeypatch.setattr(attention, "is_flash_attn_2_available", lambda: installed)
    want = "flash_attention_2" if installed else "sdpa"
    assert default_attn_implementation("cuda") == default_attn_implementation(torch.device("cuda", 0)) == want
    usable, why = attn_implementation_status("cuda:0")["flash_attention_2"]
    assert usable is installed and ("flash-attn" in why) is not installed
