"""Device hygiene without a GPU: no host-device sync inside a sampler's inner loop.

On a GPU every `.item()`, `.cpu()`, `.tolist()`, `bool(t)`, `int(t)`, ... of a CUDA tensor stalls the stream until the
kernels before it finish; one in a Langevin step costs a sync per step. On the CPU there is no stream to stall, so the guard
counts the Python-level calls that would sync (monkeypatched `torch.Tensor` methods) while a chain runs, and runs it with K
and with 2K steps: the count must not grow with the number of steps. Where CUDA exists the same chains also run on the GPU
under `torch.cuda.set_sync_debug_mode('warn')`, and the syncs it reports are counted the same way.
"""
import collections, contextlib, dataclasses, warnings
import pytest, torch
from latent_ebm_nb.methods import METHODS
from latent_ebm_nb.samplers import langevin, Trajectory
from latent_ebm_nb.levels import mala_within_gibbs, descend
from latent_ebm_nb.schedules import Schedule

# Tensor methods that copy to the host (a sync on CUDA); bool/int/float/index are how `if t`, `int(t)`, `range(t)` sync
SYNC_CALLS = ('item', 'cpu', 'tolist', 'numpy', '__bool__', '__int__', '__float__', '__index__')
DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])

@contextlib.contextmanager
def count_syncs():
    "Count the calls of `SYNC_CALLS` on any tensor (and, on CUDA, the syncs `set_sync_debug_mode('warn')` reports) inside the block."
    counts, orig = collections.Counter(), {n: getattr(torch.Tensor, n) for n in SYNC_CALLS}
    def wrap(name, f):
        def counted(self, *a, **kw):
            counts[name] += 1
            return f(self, *a, **kw)
        return counted
    for n, f in orig.items(): setattr(torch.Tensor, n, wrap(n, f))
    cuda = torch.cuda.is_available()
    if cuda: old = torch.cuda.get_sync_debug_mode(); torch.cuda.set_sync_debug_mode('warn')
    try:
        with warnings.catch_warnings(record=True) as ws:
            warnings.simplefilter('always')
            yield counts
        counts['cuda sync'] += sum('synchroniz' in str(w.message) for w in ws)
    finally:
        for n, f in orig.items(): setattr(torch.Tensor, n, f)
        if cuda: torch.cuda.set_sync_debug_mode(old)

def syncs(fn)->dict:
    "The host syncs of one call of `fn()`, by kind (zero counts dropped)."
    with count_syncs() as c: fn()
    return {k: v for k, v in c.items() if v}

def assert_flat(make, k:int=3):
    "`make(n)` returns a call that runs a chain of `n` steps; its host syncs at `k` and at `2k` steps must be the same."
    make(k)()                                                   # one-off set-up (lazy tables, first-call caches) outside the count
    a, b = syncs(make(k)), syncs(make(2*k))
    assert a == b, f"host syncs grow with the number of steps: {a} at {k} steps, {b} at {2*k}"
    return a

def tiny(name:str, steps:int|None=None, preset:str='tiny', dev:str='cpu'):
    "The tiny model of `name` on `dev`, its chain lengths (prior, posterior, per level) set to `steps`, seeded."
    s = METHODS[name]; f = {x.name for x in dataclasses.fields(s.presets[preset])}
    kw = {n: steps for n in ('prior_steps', 'post_steps', 'e_steps', 'sr_steps') if n in f and steps is not None}
    torch.manual_seed(0)
    return s.build(s.config(preset, **kw)).to(dev)

U = lambda x: (x**2).sum(1) + x[:, 0].sin()

# --- the guard itself catches what it should

def bad_langevin(energy_fn, x, n_steps, step_size):
    "A sampler with a host sync per step (a logged energy): what the guard exists to catch."
    for _ in range(n_steps):
        x, st = langevin(energy_fn, x, 1, step_size, final_eval=True)
        if st.energy.mean().item() > 1e9: break
    return x

def test_guard_catches_an_item_per_step():
    x = torch.randn(8, 3)
    with pytest.raises(AssertionError, match="host syncs grow with the number of steps"):
        assert_flat(lambda k: lambda: bad_langevin(U, x, k, 0.1))
    got = syncs(lambda: bad_langevin(U, x, 5, 0.1))
    assert got == {'item': 5}, got                                               # one per step, counted exactly

@pytest.mark.parametrize('call', ['bool', 'int', 'float', 'tolist', 'cpu', 'numpy'])
def test_guard_counts_every_kind(call):
    t = torch.ones(())
    f = dict(bool=lambda: bool(t), int=lambda: int(t), float=lambda: float(t), tolist=lambda: t.tolist(), cpu=lambda: t.cpu(), numpy=lambda: t.numpy())[call]
    assert syncs(f) == {'__' + call + '__' if call in ('bool', 'int', 'float') else call: 1}

def test_guard_restores_tensor_methods():
    before = {n: getattr(torch.Tensor, n) for n in SYNC_CALLS}
    syncs(lambda: torch.ones(2).sum().item())
    assert {n: getattr(torch.Tensor, n) for n in SYNC_CALLS} == before

# --- the samplers: no sync at all inside the chains

@pytest.mark.parametrize('dev', DEVICES)
@pytest.mark.parametrize('mala', [False, True])
def test_langevin_has_no_sync(dev, mala):
    x = torch.randn(16, 3, device=dev)
    s = torch.full((16,), 0.1, device=dev)                                      # per-chain steps as well as a scalar
    assert assert_flat(lambda k: lambda: langevin(U, x, k, 0.1, mala=mala)) == {}
    assert assert_flat(lambda k: lambda: langevin(U, x, k, s, mala=mala, traj=Trajectory(stride=2))) == {}

@pytest.mark.parametrize('dev', DEVICES)
@pytest.mark.parametrize('move', ['gibbs', 'neighbour', 'none'])
def test_mala_within_gibbs_has_no_sync(dev, move):
    d = tiny('daebm', dev=dev)
    x, t = torch.randn(16, 2, device=dev), torch.randint(0, d.T + 1, (16,), device=dev)
    assert assert_flat(lambda k: lambda: mala_within_gibbs(d.E, x, t, d.T + 1, k, d.step_table, level_move=move)) == {}

@pytest.mark.parametrize('dev', DEVICES)
@pytest.mark.parametrize('recovery', [True, False])
def test_descend_has_no_sync(dev, recovery):
    "The recovery descent and the annealed descent: K and 2K steps per level, the same host syncs."
    r = tiny('drl', dev=dev); sch = Schedule.drl(r.T).to(dev)
    steps = torch.full((r.T + 1,), 0.05, device=dev)
    rec = (sch.a, sch.sigma) if recovery else None
    assert assert_flat(lambda k: lambda: descend(r.E, torch.randn(8, 2, device=dev), range(r.T - 1, -1, -1), k, steps, recovery=rec)) == {}

# --- every latent method's prior and posterior chains (the NCE prior reads its stage count once per call)

@pytest.mark.parametrize('dev', DEVICES)
@pytest.mark.parametrize('name', ['lebm', 'joint_hebm', 'diffusion_hebm', 'nce'])
def test_latent_chains_sync_free_per_step(dev, name):
    def model(k):
        m = tiny(name, k, dev=dev)
        if name == 'nce': m.ratios.n_active.fill_(1)                          # a frozen stage: the prior is a Langevin chain
        return m
    x = METHODS[name].random_batch(4, model(1).cfg).to(dev)
    once = {'__int__': 1} if name == 'nce' else {}
    assert assert_flat(lambda k: (lambda m: lambda: m.prior_sample_z(4))(model(k))) == once
    assert assert_flat(lambda k: (lambda m: lambda: m.infer_z(x))(model(k))) == once
    if name == 'lebm':                                                           # the noise-free refinement of the AD protocol
        m = model(2)
        assert assert_flat(lambda k: lambda: m.refine_z(x, torch.zeros(4, m.latent_dim, device=dev), n_steps=k)) == {}

# --- DA-EBM's annealed descent and long-run chains, DRL's ancestral descent

@pytest.mark.parametrize('dev', DEVICES)
@pytest.mark.parametrize('preset', ['tiny', 'tiny_image'])
def test_daebm_samplers_sync_free_per_step(dev, preset):
    d = tiny('daebm', preset=preset, dev=dev)
    x = METHODS['daebm'].random_batch(4, d.cfg).to(dev)
    assert assert_flat(lambda k: lambda: d.sample_annealed(4, steps_per_level=k)) == {}
    # long_run: chunks of 2 steps, so 2K steps are twice the chunks; one host read of the acceptance at the end
    assert assert_flat(lambda k: lambda: d.long_run(x, n_steps=2*k, chunk=2), k=2) == {'item': 1}
    assert assert_flat(lambda k: lambda: d.sample(4, max_transitions=2, n_steps=k)) == {}

@pytest.mark.parametrize('dev', DEVICES)
def test_drl_descent_sync_free_per_step(dev):
    r = tiny('drl', dev=dev)
    assert assert_flat(lambda k: lambda: r.sample(8, n_steps=k)) == {}
