"The explorer (`latent_ebm_nb.explorer`): its callbacks driven without a browser, and every registered method's run opened."
import io, re, json
import numpy as np, torch, pytest
from PIL import Image

from latent_ebm_nb.explorer import (TrajectoryExplorer, LayerEnergyViewer, TrajectoryView, TrajectoryCanvas, Subject,
                                    target_subject, compute_trajectory, open_run, example_run, two_layer_demo, decoded_frames, pca_2d,
                                    DEFAULT_BOX)
from latent_ebm_nb.latent import LatentMethod
from latent_ebm_nb.methods import METHODS, load_run
from latent_ebm_nb.targets2d import get_target
from latent_ebm_nb.trainer import Trainer


@pytest.fixture(scope='module')
def ex():
    "The kernel-side renderer (`render='image'`): its view and PNG frames."
    return TrajectoryExplorer('8gaussians', sampler='ula', n_steps=30, step_size=0.2, n_chains=60, seed=0, runs=[], render='image')


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
    sub = open_run(example_run())
    assert sub.kind == 'latent' and sub.decode is not None and 'replica_exchange' in sub.samplers
    ex = TrajectoryExplorer(str(example_run()), sampler='mala', n_steps=20, step_size=0.4, n_chains=30, render='image')
    assert ex.view.latent and ex.view.images is not None
    ex.step.value = 20
    np.testing.assert_allclose(ex.view.positions, ex.view.xy[20].numpy())
    assert _png_size(ex.image.value)[0] > 500


def test_source_switch_updates_samplers():
    ex = TrajectoryExplorer('8gaussians', sampler='recovery', n_steps=12, n_chains=20)
    ex.source.value = 'lebm_tiny (checkpoint)'
    assert list(ex.sampler.options) == ['ula', 'mala', 'replica_exchange'] and ex.sampler.value == 'ula'
    assert ex.rec.x.shape[-1] == 4


def test_latent_view_without_decoder():
    sub = Subject('gauss', lambda z: z.pow(2).sum(1), 3, lambda n, g: torch.randn(n, 3, generator=g), kind='latent')
    rec = compute_trajectory(sub, 'ula', n_steps=5, n_chains=8)
    v = TrajectoryView(rec, sub).show(3)
    assert v.latent and v.images is None and v.positions.shape == (8, 2)


def test_canvas_is_default_and_scrubbing_costs_the_kernel_nothing():
    ex = TrajectoryExplorer('8gaussians', sampler='ula', n_steps=200, step_size=0.1, n_chains=500, seed=0, runs=[])
    cv = ex.canvas
    assert ex.render_mode == 'canvas' and ex.view is None and ex.widget.children[2] is cv
    assert ex.play.interval == 10
    m = cv.meta
    assert (m['S'], m['B'], m['latent'], m['level_trace']) == (201, 500, False, -1)
    assert [t['name'] for t in m['traces']] == ['energy', 'grad_norm', 'accept']
    assert len(cv.xy) == 201*500*2*4 and len(cv.traces) == 3*201*500*4 and len(cv.bands) == 3*3*201*4
    n, v = ex.n_renders, cv.version
    for k in (0, 57, 200): ex.step.value = k
    assert ex.n_renders == n and cv.version == v, 'a step must not make the kernel draw or send anything'
    for k in (0, 57, 200): np.testing.assert_array_equal(cv.positions(k), ex.rec.x[k].numpy())
    np.testing.assert_array_equal(cv.trace_values_sent()[1], ex.rec.grad_norm.numpy())
    ex.step_size.value = 0.05                     # a setting: a new trajectory, sent once
    assert cv.version == v + 1 and ex.rec.settings['step_size'] == 0.05
    np.testing.assert_array_equal(cv.positions(57), ex.rec.x[57].numpy())
    ex.chain.value = 9; assert cv.chain == 9
    ex.sampler.value = 'recovery'
    assert cv.meta['traces'][-1]['name'] == 'level' and cv.meta['level_max'] == int(ex.rec.level.max())


def test_canvas_latent_frames():
    ex = TrajectoryExplorer(str(example_run()), sampler='mala', n_steps=20, step_size=0.4, n_chains=30, chain=2)
    cv = ex.canvas
    assert cv.meta['latent'] and cv.frames_chain == 2
    f = cv.frames_sent(); assert f.shape == (21, 28, 28, 1) and f.dtype == np.uint8
    want = (decoded_frames(ex.subject().decode, ex.rec.x[:, 2])*255).round().astype(np.uint8)
    np.testing.assert_array_equal(f, want)
    np.testing.assert_allclose(cv.positions(20), pca_2d(ex.rec.x)[0][20].numpy(), atol=1e-5)   # the PCA plane
    v = cv.frames_version
    ex.chain.value = 7                            # a new chain: only its images are decoded and sent
    assert cv.frames_chain == 7 and cv.frames_version == v + 1 and cv.chain == 7


def test_canvas_module_is_offline():
    esm = TrajectoryCanvas._esm
    assert 'export default' in esm and 'http' not in esm and not re.search(r'^\s*import\b', esm, re.M)
    with pytest.raises(Exception, match='render must be'): TrajectoryExplorer(render='svg', runs=[])


def test_inline_render():
    ex = TrajectoryExplorer('gmm', n_steps=10, n_chains=20, render='inline', runs=[])
    ex.step.value = 4
    assert ex.n_renders >= 2 and ex.view.step == 4


def test_layer_viewer():
    lv = LayerEnergyViewer(**two_layer_demo(n=200, n_steps=40), render='image')
    lv.step.value = 25
    assert all(c.get_xdata()[0] == 25 for c in lv.view.cursors)
    f = lv.image.value; lv.bins.value = 10; assert lv.image.value != f and lv.view.bins == 10
    lv.chain.value = 7; assert lv.view.chain_index == 7
    # the interface without a chain: histograms only
    lv2 = LayerEnergyViewer([lambda z: z[:, 0], lambda z: z[:, 1]], torch.randn(100, 2), torch.randn(100, 2) + 1)
    assert lv2.view.e_chain is None and lv2.step.disabled and lv2.canvas.axes == []


def test_layer_viewer_canvas():
    "Canvas mode: the figure is sent without cursors, with the cursor axes; steps send nothing, bins and chain do."
    lv = LayerEnergyViewer(**two_layer_demo(n=200, n_steps=40))
    cv = lv.canvas
    assert lv.image is None and lv.widget.children[1] is cv and lv.play.interval == 10
    assert cv.version == 1 and Image.open(io.BytesIO(cv.png)).size == lv.view.fig.canvas.get_width_height()
    H = lv.view.fig.canvas.get_width_height()[1]
    for (x0, y0, w, h, a, b), ax in zip(cv.axes, lv.view.ax_c):      # the browser's cursor lands on matplotlib's
        assert (a, b) == ax.get_xlim()
        np.testing.assert_allclose(x0 + (25 - a)/(b - a)*w, ax.transData.transform((25, 0))[0], atol=1e-6)
        np.testing.assert_allclose([H - y0 - h, H - y0], ax.transAxes.transform([(0, 0), (0, 1)])[:, 1], atol=1e-6)
    lv.step.value = 25; assert cv.version == 1
    lv.bins.value = 12; assert cv.version == 2 and lv.view.bins == 12
    lv.chain.value = 5; assert cv.version == 3 and lv.view.chain_index == 5


@pytest.mark.parametrize('name', list(METHODS))
def test_every_registered_method_opens(name, tmp_path):
    "A run of each registered method (its test preset, two steps) opens through the registry, samples, draws, decodes."
    spec = METHODS[name]; cfg = spec.config(spec.test_preset)
    torch.manual_seed(0)
    two_d = len(cfg.shape) == 1
    data = spec.random_batch(800 if two_d else 40, cfg, seed=0)     # 2D: enough points for a persistent buffer
    Trainer(spec.build(cfg), data, steps=2, batch_size=10, out=tmp_path, progress=False).fit()
    s = open_run(tmp_path)
    assert tmp_path.name in s.name and name in s.name and 'step 2' in s.name, s.name
    z = s.init(6, torch.Generator().manual_seed(0))
    assert z.shape == (6, s.dim) and torch.isfinite(s.potential(z)).all()
    rec = compute_trajectory(s, 'mala', n_steps=3, step_size=0.01, n_chains=4)
    assert rec.x.shape == (4, 4, s.dim) and torch.isfinite(rec.energy).all()
    assert _png_size(TrajectoryView(rec, s).show(2).png())[0] > 500
    if isinstance(load_run(tmp_path), LatentMethod):
        assert s.kind == 'latent' and s.decode(z).shape == (6, *cfg.shape)
    elif tuple(cfg.shape) == (2,):
        assert s.kind == '2d' and s.box == DEFAULT_BOX            # no params.json: a box holding every target
        (tmp_path/'params.json').write_text(json.dumps({'notebook': 'train_daebm', 'params': {'dataset': 'moons'}}))
        assert open_run(tmp_path).box == get_target('moons').box  # the run's target, from its data parameters
    else:
        assert s.kind == 'latent' and s.dim == int(np.prod(cfg.shape))
        if len(cfg.shape) == 3: assert s.decode(z).shape == (6, *cfg.shape)


def _mnist_test(n=500):
    from latent_ebm_nb.data import load_tensors
    return load_tensors('mnist', False)[0][:n]*2 - 1


def test_shipped_lebm_mnist():
    "data/examples/lebm_mnist (make demo's LEBM, weights only): loads with the package's loader and reconstructs MNIST."
    m = load_run(example_run('lebm_mnist'))
    assert m.checkpoint_meta['method'] == 'lebm' and m.checkpoint_meta['step'] == 1500 and m.cfg.nz == 16
    x = _mnist_test(500)
    torch.manual_seed(0)
    mse = (m.reconstruct(x) - x).pow(2).mean().item()
    assert mse < 0.07, f'reconstruction MSE {mse:.4f} on 500 test images (measured 0.057 when shipped)'
    assert torch.isfinite(m.sample(8)).all()


def test_shipped_joint_hebm_mnist():
    "data/examples/joint_hebm_mnist: a real hierarchical model (L >= 2) with finite per-layer energies, for the viewer."
    from latent_ebm_nb.explorer import hierarchical_run_layers
    run = example_run('joint_hebm_mnist')
    m = load_run(run)
    assert m.checkpoint_meta['method'] == 'joint_hebm' and m.hier.L >= 2 and m.E is not None
    x = _mnist_test(500)
    mse = (m.reconstruct(x) - x).pow(2).mean().item()
    assert mse < 0.10, f'reconstruction MSE {mse:.4f} on 500 test images (measured 0.087 when shipped)'
    a = hierarchical_run_layers(run, n=100, n_steps=20, seed=0)
    assert len(a['layers']) == m.hier.L and a['chain'].shape[:2] == (21, 100)
    lv = LayerEnergyViewer(**a, render='image')
    assert lv.view.L == m.hier.L
    for e in (lv.view.e_post, lv.view.e_prior, lv.view.e_chain): assert torch.isfinite(e).all()
    assert lv.view.e_post.std(0).min() > 0, 'a layer energy is constant'
    s = open_run(run)
    assert s.kind == 'latent' and s.dim == sum(m.hier.dims) and s.decode(s.init(4, torch.Generator())).shape == (4, 1, 28, 28)
