"Multi-stage NCE prior: the product of stage ratios (resume, run notebooks: test_methods.py)."
import json, subprocess
import torch
from latent_ebm_nb.trainer import Trainer
from latent_ebm_nb.priors import GaussianReference
from latent_ebm_nb.methods import get_method
from latent_ebm_nb.methods.nce import StageRatios


def test_product_of_ratios_is_sum_of_logits():
    torch.manual_seed(0)
    R = StageRatios(3, 2, ndf=16, zero_init=False).requires_grad_(False); R.n_active.fill_(2)
    z, ref = torch.randn(20, 3), GaussianReference(3)
    spec = get_method('nce'); m = spec.build(spec.config('tiny', nz=3)); m.ratios.load_state_dict(R.state_dict())
    expect = -(R.f[0](z) + R.f[1](z)) + ref.potential(z)
    assert torch.allclose(m.prior_potential(z), expect, atol=1e-6) and torch.allclose(m.prior.potential(z), expect, atol=1e-6)
