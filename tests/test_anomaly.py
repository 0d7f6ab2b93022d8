"""The anomaly evaluation (nbs/40_anomaly.ipynb, nbs/runs/anomaly.ipynb): average precision beside the published
trapezoidal AUPRC, the tie warning, per-term records that survive a resume, and the run notebook's metrics."""
import json, subprocess
import numpy as np, pytest, torch
from latent_ebm_nb.anomaly import (HeldoutSplit, AnomalyEval, TiedScoresWarning, auprc, average_precision, evaluate_scores,
                                   tie_fraction, summarize_records, anomaly_scores)
from latent_ebm_nb.methods import get_method
from latent_ebm_nb.trainer import Trainer

from helpers import StopAt, images

def labels(n=3000, frac=0.35, seed=0)->np.ndarray:
    return (np.random.RandomState(seed).rand(n) < frac).astype(int)

def test_constant_score_gets_chance_ap_and_inflated_trapezoid():
    "A constant score: AP is exactly the anomaly fraction; the trapezoid gives (1 + chance)/2; the tie warning names the fraction."
    y = labels(); chance = y.mean()
    const = np.full(len(y), 3.0)
    assert average_precision(y, const) == chance
    assert abs(auprc(y, const) - (1 + chance)/2) < 1e-12
    assert tie_fraction(const) == 1.0 and tie_fraction(np.arange(10.)) == 0.0
    with pytest.warns(TiedScoresWarning, match=r"'constant': 100.0% of its values are tied"):
        r = evaluate_scores(y, {'constant': const})
    assert r['constant']['ap'] == chance and r['constant']['ties'] == 1.0

def test_perfect_and_random_scores():
    y = labels(); rng = np.random.RandomState(1)
    r = evaluate_scores(y, {'perfect': y + 0.5*rng.rand(len(y)), 'random': rng.rand(len(y))})
    assert abs(r['perfect']['auprc'] - 1) < 1e-12 and abs(r['perfect']['ap'] - 1) < 1e-12
    assert abs(r['random']['auprc'] - y.mean()) < 0.04 and abs(r['random']['ap'] - y.mean()) < 0.04

def anomaly_trainer(out, split, steps=8, cbs=()):
    spec = get_method('lebm'); cfg = spec.config(spec.test_preset)
    torch.manual_seed(0); model = spec.build(cfg)
    ev = AnomalyEval(split, model.score_terms, w=model.recon_weight, every=2, n_evals=3, batch_size=32)
    return Trainer(model, split.x_train, steps=steps, batch_size=20, out=out, seed=3, ckpt_every=2, progress=False,
                   cbs=[ev, *cbs]), ev

def test_records_survive_resume_exactly(tmp_path):
    "A run stopped between evaluations and resumed records exactly the evaluations of the uninterrupted run."
    x = images(160, seed=2)
    y = (torch.arange(60) % 3 == 0).long()
    split = HeldoutSplit(x[:100], x[100:], y, 0)
    full, ev_full = anomaly_trainer(tmp_path/'a', split); full.fit()
    part, ev_part = anomaly_trainer(tmp_path/'b', split, cbs=[StopAt(5)]); part.fit()
    assert [r['step'] for r in ev_part.records] == [4]
    torch.manual_seed(12345)
    res, ev_res = anomaly_trainer(tmp_path/'b', split); res.fit(resume=True)
    assert [r['step'] for r in ev_full.records] == [4, 6, 8]
    assert ev_res.records == ev_full.records and ev_res.auprcs == ev_full.auprcs
    assert (tmp_path/'a'/'metrics.jsonl').read_text() == (tmp_path/'b'/'metrics.jsonl').read_text()
    ck = torch.load(tmp_path/'a'/'checkpoint.pt', weights_only=True)          # plain data in the checkpoint
    assert ck['cbs']['AnomalyEval']['records'] == ev_full.records
    assert set(ev_full.records[0]) == {'step', 'n_test'} | {f'{n}_{m}' for n in ('joint', 'recon', 'prior') for m in ('auprc', 'ap', 'ties')}

def test_summary_keeps_best_on_test_apart():
    recs = [dict(step=s, joint_auprc=a, joint_ap=a - 0.1) for s, a in [(2, 0.9), (4, 0.6), (6, 0.7)]]
    s = summarize_records(recs, k=2)
    assert abs(s['auprc_mean'] - 0.65) < 1e-12 and s['n_evals'] == 2
    assert (s['best_on_test_auprc'], s['best_on_test_step']) == (0.9, 2)

@pytest.mark.slow
def test_anomaly_run_reports_both_protocols(lebm, root, tmp_path):
    out = tmp_path/'r'
    r = subprocess.run(lebm + ['run', 'anomaly', '-p', 'preset', 'tiny', '-p', 'steps', '4', '-p', 'eval_every', '2', '-p', 'n_evals', '2',
                               '-p', 'eval_n', '300', '--out', str(out), '--no-progress'], cwd=root, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out/'metrics.json').read_text())
    for k in ('auprc_mean', 'auprc_std', 'ap_mean', 'ap_std', 'terms', 'best_on_test_auprc', 'best_on_test_step', 'auprcs', 'records',
              'n_evals', 'anomaly_fraction'):
        assert k in m, k
    assert m['n_evals'] == 2 and [s for s, _ in m['auprcs']] == [2, 4] and len(m['records']) == 2
    joint = [a for _, a in m['auprcs']]
    assert m['best_on_test_auprc'] >= m['auprc_mean'] - 1e-12 and m['best_on_test_auprc'] == max(joint)
    assert m['best_on_test_step'] == m['auprcs'][joint.index(max(joint))][0]
    assert joint == [rec['joint_auprc'] for rec in m['records']]
    assert set(m['terms']) == {'joint', 'recon', 'prior'}
    for name, t in m['terms'].items():
        assert set(t) == {'auprc_mean', 'auprc_std', 'ap_mean', 'ap_std'}, name
        assert all(0 <= v <= 1 for v in t.values()), (name, t)
    assert m['terms']['joint']['auprc_mean'] == m['auprc_mean'] and m['terms']['joint']['ap_mean'] == m['ap_mean']
    assert 0 < m['anomaly_fraction'] < 1
    # evaluations score a fixed 300-image subset; the final model is scored once more on the whole split (digit 1: 20,302 images)
    assert [rec['n_test'] for rec in m['records']] == [300, 300] and m['eval_n'] == 300
    assert m['full_test']['n_test'] == 20_302 and m['full_test']['step'] == 4 and m['n_val'] == 3000
    # the final evaluation adds the two calibrated scores (fitted on the 3,000 held-out training normals) to the record's scores
    assert set(m['full_test']) == set(m['records'][-1]) | {f'{s}_{k}' for s in ('std_sum', 'typicality') for k in ('auprc', 'ap', 'ties')}
    assert set(m['term_histograms']) == {'recon', 'prior'} and sum(m['term_histograms']['prior']['val']) == 3000
    assert sorted(np.load(out/'terms.npz').files) == ['test_prior', 'test_recon', 'val_prior', 'val_recon', 'y_test']

from latent_ebm_nb.methods import methods_for
from latent_ebm_nb.anomaly import heldout_split

@pytest.mark.parametrize('name', [s.name for s in methods_for('anomaly')])
def test_protocol_preset_builds_and_runs_one_evaluation(name):
    """Every latent method has the `mnist_ad` protocol preset (DAMC's choices: d = 8, sigma 1, score weight 1, 5 noise-free test steps,
    lr x0.99 per 1000 iterations): it builds, trains one step on real MNIST, and scores one evaluation of every term."""
    spec = get_method(name)
    cfg = spec.config('mnist_ad')
    d = cfg.nz if hasattr(cfg, 'nz') else cfg.dims[0]
    assert (d, cfg.sigma, cfg.score_w, cfg.refine_steps, cfg.lr_decay, cfg.lr_decay_every, cfg.generator) == (8, 1.0, 1.0, 5, 0.99, 1000, 'conv')
    torch.manual_seed(0); m = spec.build(cfg)
    assert m.recon_weight == 1.0
    full = heldout_split(4)
    split = HeldoutSplit(full.x_train[:50], full.x_test[:200], full.y_test[:200], 4)
    logs = m.train_step(split.x_train[:20])
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in logs.values()), logs
    ev = AnomalyEval(split, m.score_terms, w=m.recon_weight, every=1, n_evals=1, n_test=100)
    r = ev.evaluate(1)
    assert r['n_test'] == 100 and set(r) == {'step', 'n_test'} | {f'{t}_{k}' for t in ('joint', 'recon', 'prior') for k in ('auprc', 'ap', 'ties')}
    assert all(0 <= r[f'{t}_ap'] <= 1 for t in ('joint', 'recon', 'prior'))
    torch.manual_seed(1); t = m.score_terms(split.x_test[:8])              # the joint score is weight 1 on the squared error
    torch.manual_seed(1); assert torch.allclose(m.anomaly_score(split.x_test[:8]), t['recon'] + t['prior'])


def _terms(rng, n, shift=0.):
    return dict(recon=rng.normal(shift, 2., n), prior=rng.normal(0., 0.5, n) + 0.3*shift)

def test_calibrated_scores_are_affine_invariant_per_term():
    "Rescaling (a > 0) and shifting a term in both the validation and the test terms leaves both calibrated scores unchanged."
    rng = np.random.default_rng(0)
    val, test = _terms(rng, 500), _terms(rng, 300, shift=1.)
    base = anomaly_scores(val, test, w=1.)
    moved = lambda t: dict(t, recon=7.5*t['recon'] - 40., prior=0.01*t['prior'] + 3.)
    other = anomaly_scores(moved(val), moved(test), w=1.)
    for k in ('std_sum', 'typicality'): np.testing.assert_allclose(other[k], base[k], rtol=1e-9, atol=1e-9)
    assert not np.allclose(other['joint'], base['joint'])          # the protocol's fixed-weight sum is not invariant

def test_calibrated_scores_never_read_test_labels():
    "AnomalyEval.final on a split whose test labels are permuted gives the same scores, image by image."
    from latent_ebm_nb.anomaly import HeldoutSplit, AnomalyEval
    g = torch.Generator().manual_seed(0)
    y = (torch.rand(200, generator=g) < 0.3).long()
    split = HeldoutSplit(torch.zeros(0, 1, 2, 2), torch.randn(200, 1, 2, 2, generator=g) + y.view(-1, 1, 1, 1), y, 0,
                         x_val=torch.randn(100, 1, 2, 2, generator=g))
    terms_fn = lambda x: dict(recon=x.flatten(1).sum(1), prior=x.flatten(1).pow(2).sum(1))
    _, t = AnomalyEval(split, terms_fn, w=0.5, every=2).final(1)
    _, tp = AnomalyEval(split._replace(y_test=y[torch.randperm(200, generator=g)]), terms_fn, w=0.5, every=2).final(1)
    s, sp = anomaly_scores(t['val'], t['test'], 0.5), anomaly_scores(tp['val'], tp['test'], 0.5)
    for k in s: np.testing.assert_array_equal(s[k], sp[k])
