"""Checkpoints written by earlier versions of the package still load: the shipped example runs (`data/examples/`) and
checkpoints written before the config vocabulary was unified (`tests/data/pre_rename/`), through `config.upgrade_settings`."""
import math
import pytest, torch
from latent_ebm_nb.methods import load_checkpoint, get_method
from latent_ebm_nb.trainer import read_checkpoint

# file -> (method, the old names it stores, today's settings they must become)
OLD = {
    'data/examples/lebm_tiny/checkpoint.pt': ('lebm', {'img_shape', 'ndf'}, dict(shape=(1, 28, 28), e_width=16)),
    'data/examples/lebm_mnist/checkpoint.pt': ('lebm', {'img_shape', 'ndf', 'nef'}, dict(e_width=200, enc_width=32)),
    'data/examples/joint_hebm_mnist/checkpoint.pt': ('joint_hebm', {'img_shape', 'e_reg', 'lr_i'}, dict(energy_reg=0.1, lr_q=2e-4)),
    'tests/data/pre_rename/nce_tiny.pt': ('nce', {'img_shape', 'ndf', 'nef', 'lr_f'}, dict(e_width=16, enc_width=32, lr_e=1e-4)),
    'tests/data/pre_rename/diffusion_hebm_tiny.pt': ('diffusion_hebm', {'img_shape'}, dict(shape=(1, 28, 28), dims=(4, 2))),
    'tests/data/pre_rename/daebm_tiny_image_resnet.pt': ('daebm', {'width', 'ch', 'emb', 'act', 'b_factor', 'legacy_mh'},
                                                         dict(e_width=4, t_emb=128, e_act='silu', b2=0.2**2, legacy_daebm_mh=True)),
}

@pytest.mark.parametrize('path', list(OLD))
def test_checkpoint_from_before_the_rename_loads(root, path):
    "The old names are really in the file; the model rebuilt from it has today's names with the old values and the file's weights."
    method, old_names, expect = OLD[path]
    ck = read_checkpoint(root/path)
    assert old_names <= set(ck['meta']['config']), sorted(ck['meta']['config'])
    m = load_checkpoint(root/path)
    assert m.method_name == method and type(m.cfg) is get_method(method).config_class
    for k, v in expect.items():
        got = getattr(m.cfg, k)
        assert (math.isclose(got, v, rel_tol=1e-12) if isinstance(v, float) else got == v), (k, got, v)
    sd = m.state_dict()
    assert all(torch.equal(sd[k], v) for k, v in ck['method'].items() if k != '__optimizers__')

def test_old_daebm_image_checkpoint_samples(root):
    "The DA-EBM image model from before the rename runs its sampler with the loaded (renamed) config."
    m = load_checkpoint(root/'tests/data/pre_rename/daebm_tiny_image_resnet.pt')
    torch.manual_seed(0)
    out = m.sample_annealed(4, steps_per_level=2)
    assert out.x.shape == (4, 1, 28, 28) and torch.isfinite(out.x).all()
