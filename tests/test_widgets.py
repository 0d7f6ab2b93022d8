"The explorers' callbacks, driven without a browser: each control recomputes or re-renders the right thing."
import io
import numpy as np, torch, pytest
from PIL import Image

from latent_ebm_nb.core import LebmError
from latent_ebm_nb.widgets import (TrajectoryExplorer, LayerEnergyViewer, TrajectoryView, target_subject, compute_trajectory,
                                   load_checkpoint, example_run, register_checkpoint_loader, CHECKPOINT_LOADERS,
                                   two_layer_demo, Subject)


@pytest.fixture(scope='module')
def ex():
    return TrajectoryExplorer('8gaussians', sampler='ula', n_steps=30, step_size=0.2, n_chains=60, seed=0)


def _png_size(b): return Image.open(io.BytesIO(b)).size


def test_step_slider_moves_chains(ex):
    for k in (0, 7, 30, 12):
        ex.step.value = k
        np.testing.assert_array_equal(ex.view.positions, ex.rec.x[k].numpy())
        assert ex.view.cursors[0].get_xdata()[0] == k
    n = ex.view.bf.n_full
    f1 = ex.image.value; ex.step.value = 13; assert ex.image.value != f1
    assert ex.view.bf.n_full == n, "scrubbing must not redraw the background"


def test_settings_recompute(ex):
    ex.step.value = 10
    rec = ex.rec
    ex.step_size.value = 0.05
    assert ex.rec is not rec and ex.rec.settings['step_size'] == 0.05
    np.testing.assert_array_equal(ex.view.positions, ex.rec.x[10].numpy())
    ex.sampler.value = 'mala'; assert ex.rec.sampler == 'mala' and ex.rec.accept.mean() < 1
    ex.n_steps.value = 20; assert ex.rec.n_steps == 20 and ex.step.max == 20 and ex.play.max == 20
    ex.n_chains.value = 40; assert ex.rec.n_chains == 40 and ex.chain.max == 39
    x = ex.rec.x.clone(); ex.seed.value = 5; assert not torch.equal(x, ex.rec.x)


def test_multilevel_samplers(ex):
    ex.source.value = '8gaussians'
    for smp in ('replica_exchange', 'recovery'):
        ex.sampler.value = smp
        assert ex.rec.sampler == smp and ex.rec.level is not None
        assert ex.view.traces[-1][0] == 'level'


def test_chain_selection(ex):
    ex.chain.value = 3
    assert ex.view.chain == 3
    k = ex.step.value
    np.testing.assert_array_equal(ex.view.path.get_xydata()[-1], ex.rec.x[k, 3].numpy())


def test_shipped_checkpoint():
    sub = load_checkpoint(example_run())
    assert sub.kind == 'latent' and sub.decode is not None and 'replica_exchange' in sub.samplers
    ex = TrajectoryExplorer(str(example_run()), sampler='mala', n_steps=20, step_size=0.4, n_chains=30)
    assert ex.view.latent and ex.view.images is not None
    ex.step.value = 20
    np.testing.assert_allclose(ex.view.positions, ex.view.xy[20].numpy())
    assert _png_size(ex.image.value)[0] > 500


def test_source_switch_updates_samplers():
    ex = TrajectoryExplorer('8gaussians', sampler='recovery', n_steps=12, n_chains=20)
    ex.source.value = 'lebm_tiny (checkpoint)'
    assert list(ex.sampler.options) == ['ula', 'mala', 'replica_exchange'] and ex.sampler.value == 'ula'
    assert ex.rec.x.shape[-1] == 4


def test_registry():
    calls = []
    def loader(ck, params):
        calls.append(params['preset'])
        return Subject('dummy', lambda z: z.pow(2).sum(1), 3, lambda n, g: torch.randn(n, 3, generator=g), kind='latent')
    register_checkpoint_loader('dummy', loader)
    try:
        sub = load_checkpoint(example_run(), kind='dummy')
        assert calls == ['tiny'] and sub.dim == 3
        rec = compute_trajectory(sub, 'ula', n_steps=5, n_chains=8)
        TrajectoryView(rec, sub).show(3)          # latent view without a decoder
    finally: CHECKPOINT_LOADERS.pop('dummy')
    with pytest.raises(LebmError, match='no checkpoint loader'): load_checkpoint(example_run(), kind='dummy')


def test_inline_render():
    ex = TrajectoryExplorer('gmm', n_steps=10, n_chains=20, render='inline')
    ex.step.value = 4
    assert ex.n_renders >= 2 and ex.view.step == 4


def test_layer_viewer():
    lv = LayerEnergyViewer(**two_layer_demo(n=200, n_steps=40))
    lv.step.value = 25
    assert all(c.get_xdata()[0] == 25 for c in lv.view.cursors)
    f = lv.image.value; lv.bins.value = 10; assert lv.image.value != f and lv.view.bins == 10
    lv.chain.value = 7; assert lv.view.chain_index == 7
    # the interface without a chain: histograms only
    lv2 = LayerEnergyViewer([lambda z: z[:, 0], lambda z: z[:, 1]], torch.randn(100, 2), torch.randn(100, 2) + 1)
    assert lv2.view.e_chain is None and lv2.step.disabled


def _run_dir(tmp_path, name, notebook, params, method, data):
    "A run directory as `lebm run` leaves it: a trainer checkpoint and params.json."
    import json
    from latent_ebm_nb.trainer import Trainer
    d = tmp_path/name
    Trainer(method, data, steps=3, batch_size=10, out=d, progress=False).fit()
    (d/'params.json').write_text(json.dumps({'notebook': notebook, 'params': params}))
    return d


def test_joint_hebm_and_daebm_checkpoints_open(tmp_path):
    from latent_ebm_nb.methods.joint_hebm import JointHEBM, get_joint_config
    from latent_ebm_nb.methods.daebm import DAEBM, get_config
    torch.manual_seed(0)
    dj = _run_dir(tmp_path, 'j', 'anomaly', {'method': 'joint_hebm', 'preset': 'tiny', 'use_ebm': True},
                  JointHEBM(get_joint_config('tiny')), torch.rand(40, 1, 28, 28)*2 - 1)
    sj = load_checkpoint(dj)
    assert sj.kind == 'latent' and sj.dim == 6 and 'joint_hebm' in sj.name
    rec = compute_trajectory(sj, 'mala', n_steps=5, step_size=0.1, n_chains=8)
    assert rec.x.shape == (6, 8, 6) and torch.isfinite(rec.energy).all()
    assert sj.decode(rec.x[-1]).shape == (8, 1, 28, 28)
    dd = _run_dir(tmp_path, 'd', 'train_daebm', {'preset': 'tiny', 'target': '8gaussians'},
                  DAEBM(get_config('tiny')), torch.randn(800, 2))
    sd = load_checkpoint(dd)
    assert sd.kind == '2d' and sd.dim == 2 and sd.box is not None
    rec = compute_trajectory(sd, 'ula', n_steps=5, step_size=0.1, n_chains=8)
    assert rec.x.shape == (6, 8, 2) and torch.isfinite(rec.energy).all()
    from latent_ebm_nb.methods.drl import DRL, get_drl_config
    dr = _run_dir(tmp_path, 'r', 'train_daebm', {'method': 'drl', 'preset': 'tiny', 'dataset': '8gaussians'},
                  DRL(get_drl_config('tiny')), torch.randn(800, 2))
    sr = load_checkpoint(dr)
    assert sr.kind == '2d' and isinstance(sr.potential.__self__, DRL)
    assert torch.isfinite(compute_trajectory(sr, 'mala', n_steps=3, step_size=0.01, n_chains=4).energy).all()
    di = _run_dir(tmp_path, 'i', 'train_daebm', {'preset': 'tiny_image', 'dataset': 'mnist'},
                  DAEBM(get_config('tiny_image')), torch.rand(16, 1, 28, 28)*2 - 1)
    si = load_checkpoint(di)
    assert si.kind == 'latent' and si.dim == 784
    rec = compute_trajectory(si, 'ula', n_steps=3, step_size=0.01, n_chains=4)
    assert si.decode(rec.x[-1]).shape == (4, 1, 28, 28)

def test_diffusion_hebm_checkpoint_opens(tmp_path):
    "An anomaly run of the latent diffusion HEBM opens as a latent subject: level-0 prior potential, decoded images."
    from latent_ebm_nb.methods.diffusion_hebm import DiffusionHEBM, get_diffusion_config
    d = _run_dir(tmp_path, 'h', 'anomaly', {'method': 'diffusion_hebm', 'preset': 'tiny', 'use_ebm': True, 'options': ''},
                 DiffusionHEBM(get_diffusion_config('tiny')), torch.rand(40, 1, 28, 28)*2 - 1)
    s = load_checkpoint(d)
    assert s.kind == 'latent' and 'diffusion_hebm' in s.name
    rec = compute_trajectory(s, 'mala', n_steps=4, step_size=0.05, n_chains=6)
    assert rec.x.shape == (5, 6, s.dim) and torch.isfinite(rec.energy).all()
    assert s.decode(rec.x[-1]).shape[0] == 6

def test_train_run_config_json_is_used(tmp_path):
    "A `train_joint_hebm` run is rebuilt from its config.json (here: the variational scheme, not the preset's MLE)."
    import json, dataclasses
    from latent_ebm_nb.methods.joint_hebm import JointHEBM, get_joint_config
    cfg = get_joint_config('tiny', scheme='variational')
    d = _run_dir(tmp_path, 'v', 'train_joint_hebm', {'preset': 'tiny', 'scheme': 'variational'}, JointHEBM(cfg),
                 torch.rand(40, 1, 28, 28)*2 - 1)
    (d/'config.json').write_text(json.dumps(dataclasses.asdict(cfg)))
    s = load_checkpoint(d)          # strict load_state_dict: the preset's MLE model has no inference net, so it would fail
    assert s.kind == 'latent' and torch.isfinite(s.potential(torch.randn(3, s.dim))).all()

def test_nce_checkpoints_open(tmp_path):
    "Multi-stage NCE runs open as latent subjects, from anomaly runs (preset + options) and train runs (config.json)."
    import json, dataclasses
    from latent_ebm_nb.methods.nce import MultiStageNCE, get_nce_config
    cfg = get_nce_config('tiny', iters_per_stage=2)
    x = torch.rand(40, 1, 28, 28)*2 - 1
    d = _run_dir(tmp_path, 'a', 'anomaly', {'method': 'nce', 'preset': 'tiny', 'use_ebm': True, 'options': 'iters_per_stage=2'},
                 MultiStageNCE(cfg), x)
    s = load_checkpoint(d)
    assert s.kind == 'latent' and s.dim == cfg.nz
    rec = compute_trajectory(s, 'mala', n_steps=3, step_size=0.05, n_chains=5)
    assert torch.isfinite(rec.energy).all() and s.decode(rec.x[-1]).shape[0] == 5
    d = _run_dir(tmp_path, 't', 'train_nce_multistage', {'preset': 'tiny'}, MultiStageNCE(cfg), x)
    (d/'config.json').write_text(json.dumps(dataclasses.asdict(cfg)))
    assert load_checkpoint(d).dim == cfg.nz
