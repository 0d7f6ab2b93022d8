"LEBM through the shared trainer: exact resume, the divergence guard, DDP with torchrun, the run notebook."
import json, subprocess, sys
from pathlib import Path
import pytest, torch
from latent_ebm_nb.trainer import Trainer, Diverged
from latent_ebm_nb.methods.lebm import LEBM, get_config

from helpers import images, StopAt, params

def data(n=200, seed=0): return images(n, seed)   # random images in [-1, 1]


def test_resume_is_exact(tmp_path):
    "A run interrupted at step N and resumed reaches the same parameters as an uninterrupted run."
    x = data()
    def make(out, cbs=()):
        torch.manual_seed(0)
        return Trainer(LEBM(get_config('tiny')), x, steps=24, batch_size=20, out=out, seed=7, ckpt_every=5,
                       progress=False, cbs=cbs)
    full = make(tmp_path/'a'); full.fit()
    part = make(tmp_path/'b', [StopAt(13)]); part.fit()
    assert part.step == 13
    torch.manual_seed(999)                               # a fresh process would start from other RNG states
    resumed = make(tmp_path/'b'); resumed.fit(resume=True)
    pa, pb = params(full.method), params(resumed.method)
    assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)
    oa, ob = full.method.opt_e.state_dict()['state'], resumed.method.opt_e.state_dict()['state']
    assert all(torch.equal(oa[i]['exp_avg'], ob[i]['exp_avg']) for i in oa)
    assert (tmp_path/'a'/'metrics.jsonl').read_text() == (tmp_path/'b'/'metrics.jsonl').read_text()

def test_absurd_step_size_stops_with_usable_checkpoint(tmp_path):
    torch.manual_seed(0)
    m = LEBM(get_config('tiny', prior_step_size=1e4))
    tr = Trainer(m, data(), steps=50, batch_size=20, out=tmp_path, ckpt_every=1, progress=False)
    with pytest.raises(Diverged, match=r'training diverged at step 1: .* the last good checkpoint is .*checkpoint.pt \(step 0\)'):
        tr.fit()
    ck = torch.load(tmp_path/'checkpoint.pt', weights_only=False)
    assert ck['step'] == 0
    m2 = LEBM(get_config('tiny')); m2.load_state_dict(ck['method'])          # usable: loads, finite, samples
    assert all(torch.isfinite(v).all() for v in params(m2).values())
    assert torch.isfinite(m2.sample(4)).all()

def test_divergence_through_lebm_run(lebm, root, tmp_path):
    out = tmp_path/'div'
    r = subprocess.run(lebm + ['run', 'train_lebm', '-p', 'preset', 'tiny', '-p', 'steps', '30', '-p', 'n_train', '200',
                               '-p', 'prior_step_size', '10000.0', '--out', str(out), '--no-progress'],
                       cwd=root, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and 'Diverged' in r.stderr and 'training diverged at step 1' in r.stderr
    assert 'last good checkpoint' in r.stderr and str(out/'train_lebm.ipynb') in r.stderr
    assert torch.load(out/'checkpoint.pt', weights_only=False)['step'] == 0

def test_ddp_torchrun_ranks_agree(tmp_path, root):
    torchrun = Path(sys.executable).with_name('torchrun')
    r = subprocess.run([str(torchrun), '--nproc_per_node', '2', '--master_port', '29533', str(root/'tests'/'ddp_train.py'),
                        str(tmp_path)], cwd=root, capture_output=True, text=True, timeout=600,
                       env={**__import__('os').environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr[-3000:]
    p0, p1 = torch.load(tmp_path/'rank0.pt'), torch.load(tmp_path/'rank1.pt')
    assert p0.keys() == p1.keys()
    for k in p0: assert torch.equal(p0[k], p1[k]), k
    torch.manual_seed(0); init = LEBM(get_config('tiny')).state_dict()       # rank 0's initial weights
    assert not torch.equal(p0['G.net.0.weight'], init['G.net.0.weight'])      # it trained

def test_train_lebm_run_writes_outputs(lebm, root, tmp_path):
    out = tmp_path/'tl'
    r = subprocess.run(lebm + ['run', 'train_lebm', '-p', 'preset', 'tiny', '-p', 'steps', '20', '-p', 'n_train', '300',
                               '-p', 'n_test', '100', '--out', str(out), '--no-progress'],
                       cwd=root, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out/'metrics.json').read_text())
    assert m['steps'] == 20 and 0 < m['test_recon_mse'] < 4 and 'energy_pos_mean' in m and 'energy_neg_mean' in m
    for f in ('samples', 'reconstructions', 'training'): assert (out/'figures'/f'{f}.png').stat().st_size > 500

def test_train_daebm_and_joint_anomaly_runs(lebm, root, tmp_path):
    "The other run notebooks execute end to end at tiny settings."
    r = subprocess.run(lebm + ['run', 'train_daebm', '-p', 'preset', 'tiny', '-p', 'steps', '10', '-p', 'n_samples', '50',
                               '-p', 'n_data', '1000', '--out', str(tmp_path/'d'), '--no-progress'],
                       cwd=root, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path/'d'/'metrics.json').read_text())
    assert len(m['p_t']) == 7 and abs(sum(m['p_t']) - 1) < 1e-6 and m['kl'] >= 0
    assert (tmp_path/'d'/'figures'/'densities_by_level.png').exists()
    for extra, name in ((['-p', 'method', 'drl', '-p', 'preset', 'tiny', '-p', 'n_data', '1000'], 'drl'),
                        (['-p', 'dataset', 'mnist', '-p', 'preset', 'tiny_image', '-p', 'n_ood', '50', '-p', 'max_transitions', '20',
                          '-p', 'long_run_steps', '5'], 'img')):
        r = subprocess.run(lebm + ['run', 'train_daebm', '-p', 'steps', '4', '-p', 'n_samples', '20', *extra,
                                   '--out', str(tmp_path/name), '--no-progress'], cwd=root, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((tmp_path/'drl'/'metrics.json').read_text())
    assert m['method'] == 'drl' and 0 <= m['samples_mode_weight_max_err'] <= 1
    m = json.loads((tmp_path/'img'/'metrics.json').read_text())
    ood = m['ood']['mnist vs fashion_mnist']
    assert 0 <= ood['auroc_energy0'] <= 1 and 0 <= ood['auroc_free_energy'] <= 1
    assert (tmp_path/'img'/'figures'/'long_run.png').exists()
    r = subprocess.run(lebm + ['run', 'anomaly', '-p', 'method', 'joint_hebm', '-p', 'preset', 'tiny', '-p', 'steps', '10',
                               '-p', 'eval_every', '5', '-p', 'n_evals', '1', '--out', str(tmp_path/'a'), '--no-progress'],
                       cwd=root, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 0 <= json.loads((tmp_path/'a'/'metrics.json').read_text())['auprc_mean'] <= 1
