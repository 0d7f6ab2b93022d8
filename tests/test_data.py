"Data errors on a copy of data/: a missing or corrupt file names itself and the way to restore it."
import gzip, shutil, subprocess, sys
from pathlib import Path
import pytest
from latent_ebm_nb.data import verify_raw, load_tensors, DataError, RAW_FILES, data_dir

@pytest.fixture
def data_copy(tmp_path):
    src = data_dir()
    for name in RAW_FILES:
        (tmp_path/name/'raw').mkdir(parents=True)
        for f in (src/name/'raw').glob('*.gz'): shutil.copy(f, tmp_path/name/'raw'/f.name)
    return tmp_path

def test_good_copy_loads(data_copy):
    x, y = load_tensors('fashion_mnist', train=False, root=data_copy)
    assert x.shape == (10_000, 1, 28, 28) and abs(x.mean().item() - 0.2860) < 0.01

@pytest.mark.parametrize('name,fname', [('MNIST', 'train-images-idx3-ubyte'), ('FashionMNIST', 't10k-labels-idx1-ubyte')])
def test_missing_file(data_copy, name, fname):
    (data_copy/name/'raw'/f'{fname}.gz').unlink()
    with pytest.raises(DataError) as e: verify_raw(name, data_copy)
    msg = str(e.value)
    assert 'missing data file' in msg and f'{fname}.gz' in msg and 'git checkout --' in msg

def test_truncated_file(data_copy):
    gz = data_copy/'MNIST'/'raw'/'train-images-idx3-ubyte.gz'
    gz.write_bytes(gz.read_bytes()[:100_000])
    with pytest.raises(DataError, match=r'corrupt data file .*train-images-idx3-ubyte\.gz: it does not decompress'):
        verify_raw('MNIST', data_copy)

def test_flipped_byte(data_copy):
    raw = data_copy/'MNIST'/'raw'
    data = bytearray(gzip.decompress((raw/'t10k-images-idx3-ubyte.gz').read_bytes())); data[5000] ^= 0xFF
    (raw/'t10k-images-idx3-ubyte.gz').write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(DataError, match=r'corrupt data file .*t10k-images-idx3-ubyte\.gz: its contents have MD5'):
        load_tensors('mnist', train=False, root=data_copy)
    assert not (raw/'t10k-images-idx3-ubyte').exists()      # the bad uncompressed copy is not left behind

def test_error_through_env_var_in_fresh_process(data_copy):
    (data_copy/'MNIST'/'raw'/'train-labels-idx1-ubyte.gz').unlink()
    r = subprocess.run([sys.executable, '-c', "from latent_ebm_nb.data import load_tensors; load_tensors('mnist')"],
                       env={'LEBM_DATA': str(data_copy), 'PATH': '/usr/bin:/bin', 'OMP_NUM_THREADS': '1'},
                       capture_output=True, text=True)
    assert r.returncode != 0 and 'DataError: missing data file' in r.stderr and 'train-labels-idx1-ubyte.gz' in r.stderr

def test_online_dataset_offline_message(tmp_path, monkeypatch):
    import torchvision.datasets as tvd
    def boom(*a, **k): raise RuntimeError('<urlopen error [Errno -3] Temporary failure in name resolution>')
    monkeypatch.setattr(tvd, 'SVHN', boom)
    from latent_ebm_nb.data import load_dataset
    with pytest.raises(DataError, match='SVHN is not shipped .* needs internet access once'):
        load_dataset('svhn', root=tmp_path, download=True)
