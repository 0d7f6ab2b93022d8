"Multi-stage NCE prior: exact resume mid-stage, the product of stage ratios, the run notebooks at tiny settings."
import json, subprocess
import torch
from latent_ebm_nb.trainer import Trainer
from latent_ebm_nb.priors import GaussianReference
from latent_ebm_nb.methods.nce import MultiStageNCE, get_nce_config, StageRatios

from helpers import images, StopAt, params

def data(n=200, seed=0): return images(n, seed)   # random images in [-1, 1]


def test_resume_mid_stage_is_exact(tmp_path):
    "Interrupted inside stage 1 (persistent negatives, encoder) and resumed: the same parameters, chains and stage."
    x = data()
    def make(out, cbs=()):
        torch.manual_seed(0)
        cfg = get_nce_config('tiny', negatives='persistent', encoder=True, iters_per_stage=6)
        return Trainer(MultiStageNCE(cfg), x, steps=16, batch_size=20, out=out, seed=3, ckpt_every=4, progress=False, cbs=cbs)
    full = make(tmp_path/'a'); full.fit()
    part = make(tmp_path/'b', [StopAt(9)]); part.fit()
    assert part.step == 9 and part.method.stage == 1 and part.method.training_stage == 1
    torch.manual_seed(123)
    resumed = make(tmp_path/'b'); resumed.fit(resume=True)
    pa, pb = params(full.method), params(resumed.method)
    assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)
    assert resumed.method.stage == 2 and int(resumed.method.it) == 16
    assert (tmp_path/'a'/'metrics.jsonl').read_text() == (tmp_path/'b'/'metrics.jsonl').read_text()

def test_product_of_ratios_is_sum_of_logits():
    torch.manual_seed(0)
    R = StageRatios(3, 2, ndf=16, zero_init=False).requires_grad_(False); R.n_active.fill_(2)
    z, ref = torch.randn(20, 3), GaussianReference(3)
    m = MultiStageNCE(get_nce_config('tiny', nz=3)); m.ratios.load_state_dict(R.state_dict())
    expect = -(R.f[0](z) + R.f[1](z)) + ref.potential(z)
    assert torch.allclose(m.prior_potential(z), expect, atol=1e-6) and torch.allclose(m.prior.potential(z), expect, atol=1e-6)

def test_train_nce_multistage_and_anomaly_runs(lebm, root, tmp_path):
    out = tmp_path/'n'
    r = subprocess.run(lebm + ['run', 'train_nce_multistage', '-p', 'preset', 'tiny', '-p', 'n_train', '300', '-p', 'n_test', '100',
                               '-p', 'n_prior', '100', '--out', str(out), '--no-progress'],
                       cwd=root, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out/'metrics.json').read_text())
    assert m['steps'] == 10 and m['n_stages_done'] == 2 and len(m['stages']) == 2 and 0 < m['test_recon_mse'] < 4
    assert all(0 <= s['heldout_acc'] <= 1 and 'hole_c2st_after' in s and 'hole_mmd2_before' in s for s in m['stages'])
    for f in ('samples', 'reconstructions', 'training', 'samples_stage1', 'samples_stage2'):
        assert (out/'figures'/f'{f}.png').stat().st_size > 300
    r = subprocess.run(lebm + ['run', 'anomaly', '-p', 'method', 'nce', '-p', 'preset', 'tiny', '-p', 'steps', '10',
                               '-p', 'eval_every', '5', '-p', 'n_evals', '1', '--out', str(tmp_path/'a'), '--no-progress'],
                       cwd=root, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 0 <= json.loads((tmp_path/'a'/'metrics.json').read_text())['auprc_mean'] <= 1
