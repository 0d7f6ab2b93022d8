"Latent diffusion HEBM: published coefficients, the zero-energy conditional, the ablation's shared generator, the second stage on a joint-HEBM generator (resume, run notebooks: test_methods.py)."
import json, subprocess
import pytest, torch
from latent_ebm_nb.testing import test_mc as check_mc
from latent_ebm_nb.trainer import Trainer
from latent_ebm_nb.hierarchy import GaussianHierarchy
from latent_ebm_nb.methods import get_method, load_run
from latent_ebm_nb.methods.diffusion_hebm import hebm_schedule, eps_level_potential
from latent_ebm_nb.levels import recovery_conditional

from helpers import images

spec = get_method('diffusion_hebm')

def data(n=120, seed=0): return images(n, seed)   # random images in [-1, 1]

def test_coefficients_match_reference_tables():
    "Cui, Wu & Han 2023, arXiv:2306.06323; Cui & Han 2024, arXiv:2405.13910, T = 3, b^2 = 3e-5 (CIFAR-10 code)."
    m = spec.build(spec.config('mnist_cpu'))
    co = m.coefficients()
    ref = dict(temperature=[1.44e-5, 1.77e-3, 2.88e-3], step_size=[0.0038, 0.042, 0.054], a=[0.72213, 0.38627, 1.],
               sigma=[0.69175, 0.92239, 0.99974], sigma_bar=[0.0100, 0.69179, 0.96031])
    tol = dict(temperature=[5e-8, 5e-6, 5e-6], step_size=[5e-5, 5e-4, 5e-4], a=[5e-5]*3, sigma=[5e-5]*3, sigma_bar=[5e-5]*3)
    for k, v in ref.items():
        assert torch.all((co[k].double() - torch.tensor(v, dtype=torch.float64)).abs() <= torch.tensor(tol[k]) + 1e-7), (k, co[k])
    assert co['tether'].tolist() == [1., 1., 0.]
    assert torch.allclose(hebm_schedule(1).sqrt_alpha_bar, hebm_schedule(3).sqrt_alpha_bar[[0, 3]])

def test_zero_energy_conditional_is_gaussian_posterior():
    "E = 0: p(eps_t | eps_t+1) = N(a eps_t+1, sigma^2) below the top, N(0, I) at the top."
    torch.manual_seed(0)
    sch, n = hebm_schedule(2), 3000
    U = eps_level_potential(None, GaussianHierarchy([2, 1], width=4).to_z, torch.ones(2))
    nxt = torch.tensor([0.8, -1.1, 0.4]).expand(n, 3)
    for lvl in range(2):
        x = recovery_conditional(U, nxt, torch.full((n,), lvl), sch.a, sch.sigma, 0.5*sch.sigma[1:], 120, mala=True, top_unconditional=True)[0]
        mean, sd = (torch.zeros(3), 1.) if lvl == 1 else (sch.a[1]*nxt[0], sch.sigma[1].item())
        for j in range(3):
            check_mc(x[:, j].mean(), mean[j], sd, n); check_mc(x[:, j].var(), sd**2, 2**0.5*sd**2, n)

def test_ablation_shares_the_generator():
    "use_ebm False with the same seed trains the very same generator (two-stage)."
    x = data()
    ms = []
    for use in (True, False):
        torch.manual_seed(0)
        m = spec.build(spec.config('tiny', pretrain_steps=3, use_ebm=use))
        Trainer(m, x, steps=6, batch_size=20, progress=False, seed=1).fit(); ms.append(m)
    for k, v in ms[0].G.state_dict().items(): assert torch.equal(v, ms[1].G.state_dict()[k])
    assert ms[1].E is None and ms[0].E is not None

@pytest.mark.slow
def test_second_stage_on_a_joint_hebm_generator(lebm, root, tmp_path):
    "The paper's setting: the diffusion prior trained on the frozen generator of a joint-HEBM run (`gen_from`)."
    import torch
    jr, out = tmp_path/'joint', tmp_path/'diff'
    r = subprocess.run(lebm + ['run', 'train_joint_hebm', '-p', 'preset', 'tiny', '-p', 'steps', '4', '-p', 'n_train', '200',
                               '-p', 'n_test', '50', '-p', 'n_probe', '50', '--out', str(jr), '--no-progress'],
                       cwd=root, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    r = subprocess.run(lebm + ['run', 'train_diffusion_hebm', '-p', 'preset', 'tiny', '-p', 'gen_from', str(jr), '-p', 'n_train', '200',
                               '-p', 'n_test', '60', '-p', 'prior_steps', '3', '-p', 'n_prior', '60', '--out', str(out), '--no-progress'],
                       cwd=root, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    js = load_run(jr).state_dict()
    ds = load_run(out).state_dict()
    gen = [k for k in js if k.startswith(('hier.', 'G.'))]
    assert gen and all(torch.equal(js[k], ds[k]) for k in gen)      # the generator is the joint run's, unchanged
