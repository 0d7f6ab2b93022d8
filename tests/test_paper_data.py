"""SVHN, CIFAR-10 and CelebA through torchvision's own classes, on small fake folders written in exactly torchvision's layout.

The real files cannot be fetched here, and torchvision checks each file's MD5 against its own table, which no fake file can
match. So every set is loaded twice: with `check_md5=False` (torchvision's class with the MD5s of its table set to None,
so its own `check_integrity` checks that each file exists), and with the check on after pointing torchvision's table at the
fake files' MD5s (monkeypatched for the test), which runs torchvision's whole unmodified path, integrity check included.
"""
import hashlib, pickle
from pathlib import Path
import numpy as np, pytest, torch
import torchvision.datasets as tvd
from PIL import Image
from latent_ebm_nb.data import DataError, load_dataset, load_tensors, online_files, download_command

def write_svhn(root:Path, n:dict={'train': 5, 'test': 3}, seed:int=0)->dict:
    "`root/SVHN/{train,test}_32x32.mat` as the real ones: `X` (32, 32, 3, N) uint8, `y` (N, 1) with 10 for the digit 0."
    import scipy.io
    (root/'SVHN').mkdir(parents=True, exist_ok=True); g, out = np.random.default_rng(seed), {}
    for split, k in n.items():
        X, y = g.integers(0, 256, (32, 32, 3, k), dtype=np.uint8), g.integers(1, 11, (k, 1)).astype(np.uint8)
        scipy.io.savemat(root/'SVHN'/f'{split}_32x32.mat', {'X': X, 'y': y}); out[split] = (X, y)
    return out

def write_cifar10(root:Path, per_batch:int=4, seed:int=0)->dict:
    "`root/CIFAR10/cifar-10-batches-py/`: five training batches, the test batch, batches.meta (pickles as the real ones)."
    d = root/'CIFAR10'/'cifar-10-batches-py'; d.mkdir(parents=True, exist_ok=True); g, out = np.random.default_rng(seed), {}
    for name in [f'data_batch_{i}' for i in range(1, 6)] + ['test_batch']:
        data, labels = g.integers(0, 256, (per_batch, 3072), dtype=np.uint8), g.integers(0, 10, per_batch).tolist()
        with open(d/name, 'wb') as f: pickle.dump({'batch_label': name, 'data': data, 'labels': labels}, f, protocol=2)
        out[name] = (data, labels)
    names = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']
    with open(d/'batches.meta', 'wb') as f: pickle.dump({'num_cases_per_batch': per_batch, 'label_names': names, 'num_vis': 3072}, f, protocol=2)
    return out

ATTRS = '5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young'.split()
LANDMARKS = 'lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y'.split()

def write_celeba(root:Path, partition=(0, 0, 0, 1, 2, 2), seed:int=0)->dict:
    "`root/CelebA/celeba/`: 178x218 aligned JPEGs (one flat colour each) and the five text files, laid out and headed as the real ones."
    # at least two images per split: torchvision's CelebA squeezes the split's indices and fails on a split of one
    d = root/'CelebA'/'celeba'; (d/'img_align_celeba').mkdir(parents=True, exist_ok=True); g = np.random.default_rng(seed)
    files = [f'{i + 1:06d}.jpg' for i in range(len(partition))]
    colours = g.integers(30, 226, (len(files), 3)).tolist()
    for f, c in zip(files, colours): Image.new('RGB', (178, 218), tuple(c)).save(d/'img_align_celeba'/f, quality=95)
    ids = g.integers(1, 10178, len(files)).tolist()
    table = lambda header, rows: ''.join([f'{len(files)}\n', ' '.join(header) + ' \n'] + [f'{f} ' + ' '.join(map(str, r)) + '\n' for f, r in zip(files, rows)])
    (d/'list_eval_partition.txt').write_text(''.join(f'{f} {p}\n' for f, p in zip(files, partition)))
    (d/'identity_CelebA.txt').write_text(''.join(f'{f} {i}\n' for f, i in zip(files, ids)))
    (d/'list_attr_celeba.txt').write_text(table(ATTRS, [g.choice([-1, 1], 40).tolist() for _ in files]))
    (d/'list_bbox_celeba.txt').write_text(table(['image_id', 'x_1', 'y_1', 'width', 'height'], [g.integers(0, 200, 4).tolist() for _ in files]))
    (d/'list_landmarks_align_celeba.txt').write_text(table(LANDMARKS, [g.integers(60, 160, 10).tolist() for _ in files]))
    return dict(files=files, colours=colours, ids=ids, partition=list(partition))

WRITERS = {'svhn': write_svhn, 'cifar10': write_cifar10, 'celeba': write_celeba}

def md5(p:Path)->str: return hashlib.md5(p.read_bytes()).hexdigest()

def trust_fake_files(monkeypatch, name:str, root:Path):
    "Point torchvision's MD5 table of `name` at the fake files (for this test only), so its own integrity check passes."
    if name == 'svhn':
        sl = {k: list(v) for k, v in tvd.SVHN.split_list.items()}
        for k in ('train', 'test'): sl[k][2] = md5(root/'SVHN'/sl[k][1])
        monkeypatch.setattr(tvd.SVHN, 'split_list', sl)
    elif name == 'cifar10':
        d, c = root/'CIFAR10'/tvd.CIFAR10.base_folder, tvd.CIFAR10
        monkeypatch.setattr(c, 'train_list', [[f, md5(d/f)] for f, _ in c.train_list])
        monkeypatch.setattr(c, 'test_list', [[f, md5(d/f)] for f, _ in c.test_list])
        monkeypatch.setattr(c, 'meta', dict(c.meta, md5=md5(d/c.meta['filename'])))
    else:
        d = root/'CelebA'/'celeba'
        monkeypatch.setattr(tvd.CelebA, 'file_list', [(i, m if f.endswith('.zip') else md5(d/f), f) for i, m, f in tvd.CelebA.file_list])

# --- each set, loaded by torchvision's class from its layout

def test_svhn(tmp_path):
    w = write_svhn(tmp_path)
    for split, train in (('train', True), ('test', False)):
        X, y = w[split]
        x, lab = load_tensors('svhn', train, root=tmp_path, check_md5=False)
        assert x.shape == (X.shape[3], 3, 32, 32) and x.dtype == torch.float32
        assert torch.equal((x*255).round().byte(), torch.from_numpy(X).permute(3, 2, 0, 1))     # every pixel, exactly
        assert lab.tolist() == [int(v) % 10 for v in y[:, 0]]                                    # torchvision: 10 -> 0
    ds = load_dataset('svhn', root=tmp_path, check_md5=False)
    assert type(ds).__mro__[1] is tvd.SVHN and len(ds) == 5 and ds[0][0].shape == (3, 32, 32)   # torchvision's own class
    assert load_tensors('svhn', root=tmp_path, check_md5=False, n=2)[0].shape == (2, 3, 32, 32)

def test_cifar10(tmp_path):
    w = write_cifar10(tmp_path)
    x, y = load_tensors('cifar10', True, root=tmp_path, check_md5=False)
    train = [w[f'data_batch_{i}'] for i in range(1, 6)]
    assert x.shape == (20, 3, 32, 32)
    assert torch.equal((x*255).round().byte(), torch.from_numpy(np.concatenate([d for d, _ in train])).view(20, 3, 32, 32))
    assert y.tolist() == sum((l for _, l in train), [])
    xt, yt = load_tensors('cifar10', False, root=tmp_path, check_md5=False)
    assert torch.equal((xt*255).round().byte(), torch.from_numpy(w['test_batch'][0]).view(4, 3, 32, 32)) and yt.tolist() == w['test_batch'][1]
    assert load_dataset('cifar10', root=tmp_path, check_md5=False).classes[:2] == ['airplane', 'automobile']

def test_celeba_64(tmp_path):
    w = write_celeba(tmp_path)
    ds = load_dataset('celeba', True, root=tmp_path, check_md5=False)
    assert len(ds) == 3 and ds.filename == w['files'][:3] and ds.attr.shape == (3, 40) and ds.attr_names[:2] == ATTRS[:2]
    x, ids = load_tensors('celeba', True, root=tmp_path, check_md5=False)
    assert x.shape == (3, 3, 64, 64) and ids.tolist() == w['ids'][:3]
    # 178x218 -> 64 wide -> central 64x64: a flat colour stays that colour (JPEG rounding: 3/255)
    assert torch.allclose(x.mean((2, 3)), torch.tensor(w['colours'][:3])/255, atol=3/255)
    xt, idt = load_tensors('celeba', False, root=tmp_path, check_md5=False)
    assert xt.shape == (2, 3, 64, 64) and idt.tolist() == w['ids'][4:]                       # partition 2 = test

# --- torchvision's MD5 check: fake files fail it; pointed at their MD5s, the unmodified path loads them

@pytest.mark.parametrize('name', ['svhn', 'cifar10', 'celeba'])
def test_md5_checked_by_torchvision(name, tmp_path, monkeypatch):
    WRITERS[name](tmp_path)
    with pytest.raises(DataError, match=r"(?s)files in .* do not match torchvision's MD5s .*check_md5=False"):
        load_dataset(name, root=tmp_path)
    trust_fake_files(monkeypatch, name, tmp_path)
    ds = load_dataset(name, root=tmp_path)
    assert type(ds) is getattr(tvd, {'svhn': 'SVHN', 'cifar10': 'CIFAR10', 'celeba': 'CelebA'}[name]) and len(ds) in (3, 5, 20)

# --- without the files: the folder, the class and the command

@pytest.mark.parametrize('name,cls,call', [
    ('svhn', 'SVHN', "tv.SVHN('{f}', split='train', download=True); tv.SVHN('{f}', split='test', download=True)"),
    ('cifar10', 'CIFAR10', "tv.CIFAR10('{f}', download=True)"),
    ('celeba', 'CelebA', "tv.CelebA('{f}', split='all', download=True)")])
def test_missing_data_names_folder_class_and_command(name, cls, call, tmp_path):
    f = tmp_path/cls
    with pytest.raises(DataError) as e: load_dataset(name, root=tmp_path)
    msg = str(e.value)
    assert msg.startswith(f"{cls} is not shipped with latent_ebm_nb and is not in {f}: missing {online_files(name)[0]}")
    assert f"It is read with torchvision.datasets.{cls}(root='{f}'" in msg and 'download=False). This needs internet access once' in msg
    assert f'  python -c "import torchvision.datasets as tv; {call.format(f=f)}"' in msg.splitlines()
    assert download_command(name, tmp_path) == f'python -c "import torchvision.datasets as tv; {call.format(f=f)}"'

def test_partial_folder_lists_what_is_missing(tmp_path):
    write_cifar10(tmp_path); (tmp_path/'CIFAR10'/'cifar-10-batches-py'/'data_batch_3').unlink()
    with pytest.raises(DataError, match=r"is not in .*CIFAR10: missing cifar-10-batches-py/data_batch_3\. It is read"):
        load_dataset('cifar10', False, root=tmp_path, check_md5=False)
    write_celeba(tmp_path); (tmp_path/'CelebA'/'celeba'/'identity_CelebA.txt').unlink()
    with pytest.raises(DataError, match=r"(?s)missing celeba/identity_CelebA.txt\. .*gdown package"):
        load_dataset('celeba', root=tmp_path, check_md5=False)
