"Inception FID: the error when the weights cannot be fetched (made offline on any machine), the feature net chosen by data set."
import urllib.error
import pytest, torch
import torch_fidelity.feature_extractor_inceptionv3 as tfi
from latent_ebm_nb.data import DataError
from latent_ebm_nb.fid import inception_v3, inception_weights_path, inception_weights_url, feature_net_for

def test_weights_unreachable_error(tmp_path, monkeypatch):
    def offline(url, *a, **k): raise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')
    monkeypatch.setattr(tfi, 'load_state_dict_from_url', offline)
    old = torch.hub.get_dir(); torch.hub.set_dir(str(tmp_path))
    try:
        with pytest.raises(DataError) as e: inception_v3()
    finally: torch.hub.set_dir(old)
    p = tmp_path/'checkpoints'/'weights-inception-2015-12-05-6726825d.pth'
    assert str(e.value).startswith(f"cannot load the Inception-v3 weights for FID/KID from {inception_weights_url()} (cached in {p}): "
                                   "URLError: <urlopen error [Errno -3] Temporary failure in name resolution>. ")
    assert 'this needs internet access once' in str(e.value) and f'copy it to {p}, or pass weights=PATH' in str(e.value)

def test_corrupt_weights_file(tmp_path):
    (tmp_path/'w.pth').write_bytes(b'not a torch file')
    with pytest.raises(DataError, match='cannot load the Inception-v3 weights for FID/KID from the file .*w.pth: '):
        inception_v3(tmp_path/'w.pth')

def test_feature_net_by_dataset():
    assert [feature_net_for(d) for d in ('mnist', 'fashion_mnist', 'svhn', 'cifar10', 'celeba')] == ['lenet']*2 + ['inception']*3
    with pytest.raises(DataError, match="unknown data set 'lsun'"): feature_net_for('lsun')
