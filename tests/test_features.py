"""Offline FID/KID: the shipped LeNet feature nets (checksum, accuracy), FID/KID on real and shifted image sets, and
the errors for a missing or changed weight file."""
import shutil, warnings

import pytest, torch

import latent_ebm_nb.features as lf       # not `from ... import test_accuracy`: pytest would collect it as a test
from latent_ebm_nb.data import DataError, load_tensors

MIN_ACC = {'mnist': 0.99, 'fashion_mnist': 0.90}


def _test_images(dataset):
    return load_tensors(dataset, train=False)[0]*2 - 1


@pytest.mark.parametrize('dataset', MIN_ACC)
def test_shipped_weights_checksum_and_accuracy(dataset):
    p = lf.feature_weights_path(dataset)
    assert lf.file_sha256(p) == lf.FEATURE_SHA256[dataset]
    assert p.stat().st_size < 800_000                                   # float32, 184,586 parameters
    sd = torch.load(p, weights_only=True)
    assert all(v.dtype == torch.float32 for v in sd.values())
    acc = lf.test_accuracy(lf.load_feature_net(dataset), dataset, n=2000)
    assert acc >= MIN_ACC[dataset], f"{dataset}: accuracy {acc:.4f} on 2,000 test images"


@pytest.mark.slow
@pytest.mark.parametrize('dataset', MIN_ACC)
def test_fid_kid_self_halves_shifted(dataset):
    """Against itself: FID 0 (KID slightly negative: see nbs/08_features.ipynb). Two disjoint random halves of the test
    split: KID unbiased (0 within 3 std). Noisy images: far above the halves. (Random halves: MNIST's first 5,000 test
    images come from other writers than the last 5,000, and KID tells them apart; see the next test.)"""
    x, net = _test_images(dataset), lf.load_feature_net(dataset)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    a, b = x[perm[:5000]], x[perm[5000:]]
    same = lf.fid_kid(a[:1000], a[:1000], dataset, subset_size=500, subsets=50, net=net)
    assert abs(same['fid']) < 1e-6, same                               # eigenvalue route in float64: ~1e-10 in practice
    assert same['kid_mean'] < 0, same                                  # shared images in the subsets: a -O(1/N) bias
    halves = lf.fid_kid(a, b, dataset, net=net)                        # subsets of 1,000, 100 of them
    assert abs(halves['kid_mean']) < 3*halves['kid_std'], halves
    assert 0 < halves['fid'] < 10, halves                              # only FID's finite-N bias remains (about 4 at N = 5,000)
    noisy = (a + 0.5*torch.randn(a.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    shifted = lf.fid_kid(noisy, b, dataset, net=net)
    assert shifted['fid'] > 20*halves['fid'], (shifted, halves)
    assert shifted['kid_mean'] > 3*shifted['kid_std'] and shifted['kid_mean'] > 20*abs(halves['kid_mean']), (shifted, halves)


def test_mnist_test_split_first_and_last_halves_differ():
    "MNIST's test split: the first 5,000 images (NIST's SD-3 writers, cleaner) vs the last 5,000 (SD-1): a real shift, of writers."
    x = _test_images('mnist')
    r = lf.fid_kid(x[:5000], x[5000:], 'mnist')
    assert r['kid_mean'] > 3*r['kid_std'], r


def test_another_class_is_far_and_floor_row_scale():
    "MNIST zeros against all digits: far above the test-vs-train floor at the same N."
    x, y = load_tensors('mnist', train=False)
    x = x*2 - 1
    zeros, rest = x[y == 0][:900], x[y != 0][:900]
    net = lf.load_feature_net('mnist')
    floor = lf.floor_row('mnist', n=900, subset_size=500, subsets=50)
    assert floor['n'] == 900 and floor['fid'] > 0
    far = lf.fid_kid(zeros, rest, 'mnist', subset_size=500, subsets=50, net=net)
    assert far['fid'] > 20*floor['fid'] and far['kid_mean'] > 3*far['kid_std'], (far, floor)


def test_fid_kid_deterministic_and_rng_untouched():
    x = _test_images('mnist')
    st = torch.get_rng_state()
    r1 = lf.fid_kid(x[:600], x[600:1200], 'mnist', subset_size=300, subsets=20)
    r2 = lf.fid_kid(x[:600], x[600:1200], 'mnist', subset_size=300, subsets=20)
    assert r1 == r2 and torch.equal(torch.get_rng_state(), st)
    with warnings.catch_warnings(record=True) as w:                 # [0, 1] pixels by mistake: a warning
        warnings.simplefilter('always')
        lf.fid_kid((x[:600] + 1)/2, x[600:1200], 'mnist', subset_size=300, subsets=5)
    assert any('[-1, 1]' in str(m.message) for m in w)
    with pytest.raises(Exception, match=r'x_ref must be images \(N, 1, 28, 28\)'):
        lf.fid_kid(x[:10], x[:10, 0], 'mnist')


@pytest.mark.parametrize('dataset', MIN_ACC)
def test_missing_or_corrupt_weights_give_clear_error(dataset, tmp_path):
    p = lf.feature_weights_path(dataset, tmp_path)
    with pytest.raises(DataError, match=rf"missing feature-net weights .*{p.name}.*lebm run train_feature_net -p dataset {dataset}"):
        lf.load_feature_net(dataset, tmp_path)
    p.parent.mkdir()
    shutil.copy(lf.feature_weights_path(dataset), p)
    lf.load_feature_net(dataset, tmp_path)                           # an intact copy loads
    b = bytearray(p.read_bytes()); b[len(b)//2] ^= 0xFF; p.write_bytes(bytes(b))
    with pytest.raises(DataError, match=rf"corrupt feature-net weights .*{p.name}: SHA-256 .*git checkout -- data/features/{p.name}"):
        lf.load_feature_net(dataset, tmp_path)
    with pytest.raises(DataError, match='shipped: mnist, fashion_mnist'):
        lf.load_feature_net('cifar10')
