"Joint-HEBM (MLE and variational schemes) through the shared trainer: finite steps, gradient flow, exact resume, the run notebook."
import json, subprocess
import pytest, torch
from latent_ebm_nb.trainer import Trainer
from latent_ebm_nb.methods.joint_hebm import (JointHEBM, get_joint_config, hierarchical_grid, layer_energies_pos_neg,
                                              layer_probes)

from helpers import images, StopAt, params

def data(n=120, seed=0): return images(n, seed)   # random images in [-1, 1]


@pytest.mark.parametrize('kw', [dict(scheme='variational'), dict(scheme='variational', use_ebm=False),
                                dict(scheme='variational', dims=(4, 3, 2)), dict(scheme='mle')])
def test_train_step_finite_and_gradients_flow(kw):
    torch.manual_seed(0)
    m = JointHEBM(get_joint_config('tiny', **kw))
    before = {k: v.clone() for k, v in params(m).items()}
    out = m.train_step(data(16))
    assert all(torch.isfinite(v) for v in out.values())
    moved = {k.split('.')[0] for k, v in params(m).items() if not torch.equal(v, before[k])}
    want = {'G', 'hier'} | ({'E'} if m.cfg.use_ebm else set()) | ({'Q'} if m.cfg.scheme == 'variational' else set())
    assert want <= moved, (want, moved)

def test_variational_resume_is_exact(tmp_path):
    "Interrupted at step N and resumed, the variational scheme reaches the same parameters and optimiser states (4 optimisers)."
    x = data()
    def make(out, cbs=()):
        torch.manual_seed(0)
        return Trainer(JointHEBM(get_joint_config('tiny', scheme='variational')), x, steps=12, batch_size=20, out=out,
                       seed=3, ckpt_every=4, progress=False, cbs=cbs)
    full = make(tmp_path/'a'); full.fit()
    part = make(tmp_path/'b', [StopAt(6)]); part.fit()
    assert part.step == 6
    torch.manual_seed(999)
    resumed = make(tmp_path/'b'); resumed.fit(resume=True)
    pa, pb = params(full.method), params(resumed.method)
    assert pa.keys() == pb.keys() and any(k.startswith('Q.') for k in pa)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    for name in ('opt_i', 'opt_e', 'opt_c', 'opt_g'):
        oa, ob = getattr(full.method, name).state_dict()['state'], getattr(resumed.method, name).state_dict()['state']
        assert all(torch.equal(oa[i]['exp_avg'], ob[i]['exp_avg']) for i in oa), name

def test_variational_elbo_rises_without_ebm():
    """Without an EBM the loss is the negative ELBO of a hierarchical VAE (exact ELBO <= log p(x) is checked in nbs/22):
    a few steps on a tiny batch raise its Monte Carlo ELBO and lower the reconstruction error."""
    torch.manual_seed(0)
    m = JointHEBM(get_joint_config('tiny', scheme='variational', use_ebm=False))
    x = data(10)
    def elbo():
        with torch.no_grad(): return torch.stack([m.gen.elbo(x, m.Q) for _ in range(100)]).mean()
    el0, mse0 = elbo(), (m.reconstruct(x) - x).pow(2).mean()
    assert torch.isfinite(el0)
    for _ in range(60): m.train_step(x)
    assert elbo() > el0 and (m.reconstruct(x) - x).pow(2).mean() < mse0

def test_inspection_tools_shapes():
    torch.manual_seed(0)
    m = JointHEBM(get_joint_config('tiny', scheme='variational', dims=(4, 3, 2)))
    pos, neg = layer_energies_pos_neg(m, data(6), 4)
    assert pos.shape == (6, 3) and neg.shape == (4, 3)
    assert hierarchical_grid(m, n=2).shape == (6, 1, 28, 28)
    y = torch.arange(20) % 2
    acc = layer_probes(m, data(20), y, data(20, 1), y)
    assert set(acc) == {'layer_1', 'layer_2', 'layer_3', 'all'} and all(0 <= a <= 1 for a in acc.values())

def test_train_joint_hebm_run_writes_outputs(lebm, root, tmp_path):
    out = tmp_path/'tj'
    r = subprocess.run(lebm + ['run', 'train_joint_hebm', '-p', 'preset', 'tiny', '-p', 'steps', '6', '-p', 'n_train', '300',
                               '-p', 'n_test', '100', '-p', 'n_probe', '100', '-p', 'dims', '4,3,2', '-p', 'scheme', 'variational', '--out', str(out),
                               '--no-progress'],
                       cwd=root, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out/'metrics.json').read_text())
    assert m['steps'] == 6 and 0 < m['test_recon_mse'] < 4 and m['scheme'] == 'variational' and m['dims'] == [4, 3, 2]
    assert len(m['layer_energy_pos_mean']) == 3 and set(m['probe_accuracy']) == {'layer_1', 'layer_2', 'layer_3', 'all'}
    assert json.loads((out/'config.json').read_text())['dims'] == [4, 3, 2]
    for f in ('samples', 'reconstructions', 'hierarchical_grid', 'hierarchical_grid_labelled', 'layer_energies', 'training'):
        assert (out/'figures'/f'{f}.png').stat().st_size > 500, f

def test_anomaly_run_variational(lebm, root, tmp_path):
    r = subprocess.run(lebm + ['run', 'anomaly', '-p', 'method', 'joint_hebm', '-p', 'preset', 'tiny', '-p', 'steps', '6',
                               '-p', 'options', 'scheme=variational', '-p', 'eval_every', '3', '-p', 'n_evals', '1',
                               '--out', str(tmp_path/'a'), '--no-progress'],
                       cwd=root, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path/'a'/'metrics.json').read_text())
    assert 0 <= m['auprc_mean'] <= 1 and m['options'] == 'scheme=variational'
