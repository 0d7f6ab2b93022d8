"""Tests written once and run over every registered method (the registry in `latent_ebm_nb.methods`): exact resume,
the ablation identity, checkpoint round trips, bad settings, the anomaly notebook, a plugin method, safe loading."""
import io, json, os, subprocess, sys
from pathlib import Path
import nbformat, pytest, torch
from latent_ebm_nb.methods import METHODS, get_method, load_checkpoint, load_run, load_plugins, methods_for
from latent_ebm_nb.config import ConfigError, config_fields
from latent_ebm_nb.trainer import Trainer, UnsafeCheckpoint

from helpers import StopAt, params

# settings that reach a method's other code paths (a scheme, a phase switch, persistent chains), as options strings
VARIANTS = {'lebm': ['amortize=True,enc_width=4,prior_init=amortized,refine_steps=2,lr_decay=0.5,lr_decay_every=3'],
            'joint_hebm': ['scheme=variational', 'scheme=variational,prior_init=amortized,refine_steps=2,lr_decay=0.5,lr_decay_every=3'],
            'diffusion_hebm': ['pretrain_steps=6'],
            'nce': ['negatives=persistent,amortize=True,iters_per_stage=6,refine_steps=2']}
CASES = [(n, o) for n in METHODS for o in [''] + VARIANTS.get(n, [])]

def trainer(spec, options, out, steps=12, cbs=(), seed_model=0):
    cfg = spec.config(spec.test_preset, options)
    torch.manual_seed(seed_model)
    return Trainer(spec.build(cfg), spec.random_batch(120, cfg), steps=steps, batch_size=20, out=out, seed=3, ckpt_every=4,
                   progress=False, cbs=cbs)

def check_resume_exact(spec, options, tmp_path, steps=12, stop=7):
    "A run stopped at `stop` and resumed (in a process with other RNG state) equals the uninterrupted run exactly."
    full = trainer(spec, options, tmp_path/'a', steps); full.fit()
    part = trainer(spec, options, tmp_path/'b', steps, [StopAt(stop)]); part.fit()
    assert part.step == stop
    torch.manual_seed(12345)
    res = trainer(spec, options, tmp_path/'b', steps, seed_model=99); res.fit(resume=True)
    pa, pb = params(full.method), params(res.method)
    assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa), [k for k in pa if not torch.equal(pa[k], pb[k])]
    for name, oa in full.method.optimizers().items():
        sa, sb = oa.state_dict()['state'], res.method.optimizers()[name].state_dict()['state']
        assert all(torch.equal(sa[i]['exp_avg'], sb[i]['exp_avg']) for i in sa), name
    assert (tmp_path/'a'/'metrics.jsonl').read_text() == (tmp_path/'b'/'metrics.jsonl').read_text()

@pytest.mark.parametrize('name,options', CASES)
def test_resume_is_exact(name, options, tmp_path): check_resume_exact(get_method(name), options, tmp_path)

@pytest.mark.parametrize('name', [n for n in METHODS if 'use_ebm' in config_fields(METHODS[n].config_class)])
def test_ablation_is_the_gaussian_model(name):
    "use_ebm=False is the model with E = 0: same prior potential and score as the EBM model with its energy zeroed."
    spec = METHODS[name]
    torch.manual_seed(0); abl = spec.build(spec.config(spec.test_preset, use_ebm=False))
    torch.manual_seed(0); ebm = spec.build(spec.config(spec.test_preset, use_ebm=True))
    sa, se = params(abl), params(ebm)
    extra = set(se) - set(sa)
    assert extra and not set(sa) - set(se), "the ablation must be the EBM model minus its energy"
    shared = {k: v for k, v in sa.items() if v.shape == se[k].shape}          # (bookkeeping buffers sized by the energy stay)
    ebm.load_state_dict(se | shared | {k: torch.zeros_like(se[k]) for k in extra}, strict=True)
    z = torch.randn(16, abl.latent_dim)
    with torch.no_grad(): assert torch.equal(abl.prior_potential(z), ebm.prior_potential(z))
    x = spec.random_batch(8, spec.config(spec.test_preset))
    torch.manual_seed(1); s_abl = abl.anomaly_score(x)
    torch.manual_seed(1); s_ebm = ebm.anomaly_score(x)
    assert torch.allclose(s_abl, s_ebm, atol=1e-5, rtol=1e-5)

@pytest.mark.parametrize('name', list(METHODS))
def test_checkpoint_rebuilds_the_model(name, tmp_path):
    "A checkpoint rebuilds its method from the file alone (weights-only), options included."
    spec = METHODS[name]
    opt = next(f"{k}={v['default']}" for k, v in config_fields(spec.config_class).items() if v['type'] in ('int', 'float') and not k.startswith('lr'))
    tr = trainer(spec, opt, tmp_path, steps=3); tr.fit()
    ck = torch.load(tmp_path/'checkpoint.pt', weights_only=True)               # the whole file is plain data
    assert ck['meta']['method'] == name and ck['meta']['step'] == 3
    m = load_run(tmp_path)
    assert type(m) is spec.model and m.cfg == tr.method.cfg
    pa, pb = params(tr.method), params(m)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)

@pytest.mark.parametrize('name', list(METHODS))
def test_bad_settings_are_rejected(name):
    spec = METHODS[name]
    fields = config_fields(spec.config_class)
    with pytest.raises(ConfigError, match="unknown .*setting 'no_such_field'; valid settings: "): spec.config(spec.test_preset, 'no_such_field=1')
    with pytest.raises(ConfigError, match=f"unknown {name} preset 'no_such'; valid presets: {spec.cpu_preset}|valid presets: .*{spec.cpu_preset}"):
        spec.config('no_such')
    k = next(k for k, f in fields.items() if f['type'] == 'int')
    with pytest.raises(ConfigError, match=f"setting {k}='abc': expected int"): spec.config(spec.test_preset, f'{k}=abc')
    for k, f in fields.items():
        if f['choices']:
            with pytest.raises(ConfigError, match='not one of the choices'): spec.config(spec.test_preset, {k: 'no_such_choice'})

def run(lebm, root, *args, env=None):
    return subprocess.run(lebm + list(args), cwd=root, capture_output=True, text=True, timeout=600, env=env)

ANOMALY_CASES = [(s.name, '') for s in methods_for('anomaly')] + [('joint_hebm', 'scheme=variational'), ('diffusion_hebm', 'pretrain_steps=2')]

@pytest.mark.slow
@pytest.mark.parametrize('name,options', ANOMALY_CASES)
def test_anomaly_notebook_runs(name, options, lebm, root, tmp_path):
    out = tmp_path/'a'
    r = run(lebm, root, 'run', 'anomaly', '-p', 'method', name, '-p', 'preset', 'tiny', '-p', 'steps', '4', '-p', 'eval_every', '2',
            '-p', 'n_evals', '2', '-p', 'options', options, '--out', str(out), '--no-progress')
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out/'metrics.json').read_text())
    assert m['method'] == name and m['n_evals'] == 2 and 0 < m['auprc_mean'] <= 1 and m['options'] == options
    assert load_run(out).cfg == get_method(name).config('tiny', options)

def png(out, *names, size=300):
    for f in names: assert (out/'figures'/f'{f}.png').stat().st_size > size, f

def check_prior_effect(m, priors=('prior', 'reference', 'floor')):
    "FID/KID of each prior's decoded samples; with a floor row of real images, every row at the same N with its FID_inf."
    pe = m['prior_effect']
    assert set(pe) == set(priors) and all(v['fid'] > 0 and v['kid_std'] >= 0 for v in pe.values())
    if 'floor' in pe:
        assert len({v['n'] for v in pe.values()}) == 1 and all('fid_inf' in v for v in pe.values())
        assert pe['floor']['fid'] < min(v['fid'] for k, v in pe.items() if k != 'floor')

def check_train_lebm(out, m):
    check_prior_effect(m); png(out, 'prior_effect')
    assert m['steps'] == 20 and 0 < m['test_recon_mse'] < 4 and 'energy_pos_mean' in m and 'energy_neg_mean' in m
    png(out, 'samples', 'reconstructions', 'training', size=500)

def check_train_joint_hebm(out, m):
    check_prior_effect(m); png(out, 'prior_effect')
    assert m['steps'] == 6 and 0 < m['test_recon_mse'] < 4 and m['scheme'] == 'variational' and m['dims'] == [4, 3, 2]
    assert len(m['layer_energy_pos_mean']) == 3 and set(m['probe_accuracy']) == {'layer_1', 'layer_2', 'layer_3', 'all'}
    assert load_run(out).cfg.dims == (4, 3, 2)                 # the checkpoint records the config
    png(out, 'samples', 'reconstructions', 'hierarchical_grid', 'hierarchical_grid_labelled', 'layer_energies', 'training', size=500)

def check_train_diffusion_hebm(out, m):
    check_prior_effect(m, ('gaussian', 'joint_ebm', 'diffusion_ebm'))
    assert set(m['prior_hole']) == {'gaussian', 'joint_ebm', 'diffusion_ebm'} and all(0 <= v['c2st'] <= 1 for v in m['prior_hole'].values())
    png(out, 'priors_side_by_side')

def check_train_nce_multistage(out, m):
    check_prior_effect(m); png(out, 'prior_effect')
    assert m['steps'] == 10 and m['n_stages_done'] == 2 and len(m['stages']) == 2 and 0 < m['test_recon_mse'] < 4
    assert all(0 <= s['heldout_acc'] <= 1 and 'hole_c2st_after' in s and 'hole_mmd2_before' in s for s in m['stages'])
    png(out, 'samples', 'reconstructions', 'training', 'samples_stage1', 'samples_stage2')

def check_train_daebm(out, m):
    if m['dataset'] == 'mnist':
        ood = m['ood']['mnist vs fashion_mnist']
        assert 0 <= ood['auroc_energy0'] <= 1 and 0 <= ood['auroc_free_energy'] <= 1
        assert sorted(m['ood']) == ['mnist vs constant', 'mnist vs fashion_mnist', 'mnist vs noise']   # and the synthetic sets
        assert sorted(m['long_run'], key=int) == ['3', '5'] and m['long_run_class_kept'] == m['long_run']['5']['class_kept']
        assert 0 <= m['occ0_final'] <= 1 and 0 <= m['occ0_zero_fraction_second_half'] <= 1   # the buffer's level 0 during training
        assert m['samples_tweedie']['n'] == m['samples']['n'] == 20 and m['samples_tweedie']['fid'] > 0   # the same chains, denoised
        assert m['chains']['level'] == 0 and m['chains']['n'] == m['buffer_occupancy'][0]*64 and m['chains']['fid'] > 0
        # -p sample_start 1: the descent visits levels 1 and 0 only, sample_steps // 2 steps each
        assert m['annealed_start'] == 1 and m['annealed_steps_per_level'] == 550//2 and m['annealed_accept'][2:] == [None]*(m['T'] - 1)
        assert all(0 <= a <= 1 for a in m['annealed_accept'][:2])
        return png(out, 'long_run', 'long_run_over_time', 'buffer_levels', 'samples_tweedie')
    assert 0 <= m['samples_mode_weight_max_err'] <= 1
    if m['method'] == 'daebm':
        assert len(m['p_t']) == 7 and abs(sum(m['p_t']) - 1) < 1e-6 and m['kl'] >= 0
        png(out, 'densities_by_level')

# run notebook -> (tiny parameters, what its outputs must show); the method and its test preset come from the registry
TRAIN_RUNS = {
    'train_lebm': (['-p', 'steps', '20', '-p', 'n_train', '300', '-p', 'n_test', '100', '-p', 'n_fid', '200'], check_train_lebm),
    'train_joint_hebm': (['-p', 'steps', '6', '-p', 'n_train', '300', '-p', 'n_test', '100', '-p', 'n_probe', '100', '-p', 'dims', '4,3,2',
                          '-p', 'scheme', 'variational', '-p', 'n_fid', '200'], check_train_joint_hebm),
    'train_diffusion_hebm': (['-p', 'n_train', '200', '-p', 'n_test', '60', '-p', 'gen_steps', '3', '-p', 'prior_steps', '3',
                              '-p', 'n_prior', '60', '-p', 'n_fid', '200'], check_train_diffusion_hebm),
    'train_nce_multistage': (['-p', 'n_train', '300', '-p', 'n_test', '100', '-p', 'n_prior', '100', '-p', 'n_fid', '200'],
                             check_train_nce_multistage),
    'train_daebm': (['-p', 'steps', '10', '-p', 'n_samples', '50', '-p', 'n_data', '1000'], check_train_daebm)}
RUN_CASES = ([(s.name, nb, []) for s in METHODS.values() for nb in s.notebooks if nb in TRAIN_RUNS] +
             [('daebm', 'train_daebm', ['-p', 'dataset', 'mnist', '-p', 'preset', 'tiny_image', '-p', 'steps', '4', '-p', 'n_samples', '20',
                                        '-p', 'n_ood', '50', '-p', 'max_transitions', '20', '-p', 'long_run_steps', '5',
                                        '-p', 'sample_start', '1', '-p', 'long_run_marks', '3'])])

@pytest.mark.slow
@pytest.mark.parametrize('name,notebook,extra', RUN_CASES, ids=lambda v: ('images' if 'mnist' in v else '2d') if isinstance(v, list) else v)
def test_run_notebook_trains_the_method(name, notebook, extra, lebm, root, tmp_path):
    "Each method's run notebooks execute end to end at its test preset, write their outputs, and leave a checkpoint of it."
    from latent_ebm_nb.run_params import notebook_params
    spec, (args, check) = METHODS[name], TRAIN_RUNS[notebook]
    head = (['-p', 'method', name] if 'method' in notebook_params(notebook, root) else []) + ['-p', 'preset', spec.test_preset]
    r = run(lebm, root, 'run', notebook, *head, *args, *extra, '--out', str(tmp_path/'r'), '--no-progress')
    assert r.returncode == 0, r.stderr[-3000:]
    check(tmp_path/'r', json.loads((tmp_path/'r'/'metrics.json').read_text()))
    assert load_run(tmp_path/'r').method_name == name

@pytest.mark.parametrize('args,msg', [
    (['-p', 'preset', 'no_such'], "unknown lebm preset 'no_such'; valid presets: svhn_code, svhn_paper, mnist_cpu, mnist_ad, tiny, tiny_ad"),
    (['-p', 'options', 'nz=abc'], "setting nz='abc': expected int"),
    (['-p', 'options', 'no_such_field=1'], "unknown lebm setting 'no_such_field'; valid settings: shape, generator, gen_width"),
    (['-p', 'method', 'no_such'], "unknown method 'no_such'; registered methods: lebm, joint_hebm, diffusion_hebm, nce, daebm, drl")])
def test_lebm_run_rejects_bad_method_settings_first(args, msg, lebm, root, tmp_path):
    r = run(lebm, root, 'run', 'anomaly', *args, '--out', str(tmp_path/'r'))
    assert r.returncode == 2 and msg in r.stderr, r.stderr[-2000:]
    assert not (tmp_path/'r').exists() and 'Executing' not in r.stderr

def example_method_source(root)->str:
    "The plugin module shown on the docs page 'Adding a method' (the cell tagged example-method)."
    nb = nbformat.read(root/'nbs'/'39_adding_a_method.ipynb', as_version=4)
    return next(c.source for c in nb.cells if 'example-method' in c.metadata.get('tags', []))

@pytest.mark.slow
def test_plugin_method_end_to_end(lebm, root, tmp_path, monkeypatch):
    "A method in a temporary module: listed, run through the anomaly notebook, resumed exactly, opened in the explorer."
    plug = tmp_path/'plug'; plug.mkdir()
    (plug/'linear_ebm.py').write_text(example_method_source(root))
    env = {**os.environ, 'PYTHONPATH': str(plug), 'LEBM_PLUGINS': 'linear_ebm'}
    r = run(lebm, root, 'list', env=env)
    assert r.returncode == 0 and 'linear_ebm' in r.stdout and 'example plugin' in r.stdout, r.stderr[-2000:]
    out = tmp_path/'ad'
    r = run(lebm, root, 'run', 'anomaly', '-p', 'method', 'linear_ebm', '-p', 'preset', 'tiny', '-p', 'steps', '6',
            '-p', 'eval_every', '3', '-p', 'n_evals', '2', '--out', str(out), '--no-progress', env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 0 < json.loads((out/'metrics.json').read_text())['auprc_mean'] <= 1
    r = run(lebm, root, 'run', 'anomaly', '-p', 'method', 'linear_ebm', '-p', 'options', 'e_act=relu', '--out', str(tmp_path/'x'), env=env)
    assert r.returncode == 2 and "not one of the choices 'lrelu', 'gelu'" in r.stderr and not (tmp_path/'x').exists()
    monkeypatch.syspath_prepend(str(plug))
    monkeypatch.setattr('latent_ebm_nb.methods.METHODS', dict(METHODS))       # the registration stays in this test
    load_plugins('linear_ebm')
    import latent_ebm_nb.methods as M
    spec = M.get_method('linear_ebm')
    check_resume_exact(spec, '', tmp_path/'resume')
    from latent_ebm_nb.explorer import open_run
    sub = open_run(out)
    z = sub.init(16, torch.Generator().manual_seed(0))
    assert torch.isfinite(sub.potential(z)).all() and sub.decode(z).shape == (16, 1, 28, 28)

def test_pickle_payload_is_refused(tmp_path):
    "A checkpoint whose unpickling would create a file is refused with a message naming it; the payload never runs."
    flag = tmp_path/'payload_ran'
    class Payload:
        def __reduce__(self): return (io.open, (str(flag), 'w'))
    bad = tmp_path/'run'/'checkpoint.pt'; bad.parent.mkdir()
    spec = get_method('lebm'); m = spec.build(spec.config('tiny'))
    torch.save(dict(meta=dict(method='lebm', config={}, version='0', step=0), method=m.state_dict(), x=Payload()), bad)
    for load in (lambda: load_checkpoint(bad), lambda: load_run(bad.parent)):
        with pytest.raises(UnsafeCheckpoint, match=r"refused to load .*checkpoint\.pt: it is not a weights-only checkpoint \(Unsupported global: GLOBAL io\.open"):
            load()
    assert not flag.exists()

@pytest.mark.slow
def test_train_daebm_rejects_a_bad_sample_start_before_training(lebm, root, tmp_path):
    "A descent start above the preset's T fails in the setup cell, with the valid range, before any training step."
    out = tmp_path/'r'
    r = run(lebm, root, 'run', 'train_daebm', '-p', 'dataset', 'mnist', '-p', 'preset', 'tiny_image', '-p', 'sample_start', '4',
            '--out', str(out), '--no-progress')
    assert r.returncode == 1 and 'sample_start must be -2 (chosen on training images), -1 (start at T) or a level 0..3 of this preset, got 4' in r.stderr, r.stderr[-2000:]
    assert not (out/'checkpoint.pt').exists() and not (out/'metrics.jsonl').exists()
