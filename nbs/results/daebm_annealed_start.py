"""Where DA-EBM's image samples lose against the T = 0 ablation: annealed descent started at level `start`.

For trained DA-EBM runs (checkpoints of `lebm run train_daebm -p dataset ...`), draw 500 samples by annealed descent
started at the level-`start` Gaussian reference (`DAEBM.sample_annealed(start=...)`; start 0 is the T = 0 model's
sampler, MALA on U(x, 0) alone; start T the package default), with the same 550 MALA steps in all split over the levels
visited, and score them as train_daebm does (FID/KID against as many test images on the shipped LeNet features; the
largest class-frequency error by the LeNet classifier). Writes nbs/results/daebm_annealed_start.json. Run from the
project root, one core:
    OMP_NUM_THREADS=1 python nbs/results/daebm_annealed_start.py runs/daebm_fashion_mnist_s1 runs/daebm_mnist_s1
"""
import json, sys, datetime, platform, time
from pathlib import Path
import torch
from latent_ebm_nb.core import seed_everything, set_threads
from latent_ebm_nb.methods import load_run
from latent_ebm_nb.data import load_tensors
from latent_ebm_nb.features import fid_kid, load_feature_net

OUT, N, STEPS = Path('nbs/results/daebm_annealed_start.json'), 500, 550

def score(model, dataset:str, start:int, x_test, net, freq_data, seed:int=0)->dict:
    "FID/KID and class-frequency error of N annealed samples from level `start`."
    seed_everything(seed); t0 = time.perf_counter()
    x = torch.cat([model.sample_annealed(250, steps_per_level=STEPS//(start + 1), start=start).x for _ in range(N//250)])
    s = fid_kid(x.clamp(-1, 1), x_test[:N], dataset, subset_size=N)
    f = torch.bincount(torch.cat([net(b.clamp(-1, 1)).argmax(1) for b in x.split(250)]), minlength=10).double()/len(x)
    return dict(fid=s['fid'], kid=s['kid_mean'], class_freq_max_err=(f - freq_data).abs().max().item(), seconds=time.perf_counter() - t0)

def main(run_dirs:list[str]):
    set_threads(1)
    res = json.loads(OUT.read_text()) if OUT.exists() else dict(
        title='DA-EBM on images: annealed descent started at level start (start 0: the T = 0 sampler on the DA-EBM energy)',
        note=__doc__.split('\n\n')[1].replace('\n', ' '), commands=[],
        table=dict(columns=['run', 'dataset', 'start level', 'steps per level', 'FID', 'KID (LeNet units)', 'class freq max err'], rows=[]))
    rows = {tuple(r[:3]): r for r in res['table']['rows']}
    for d in run_dirs:
        params = json.loads((Path(d)/'params.json').read_text())['params']; ds = params['dataset']
        model = load_run(d).eval(); T = model.T
        x_test = load_tensors(ds, train=False)[0]*2 - 1
        _, labels = load_tensors(ds, train=True)   # the training split's class frequencies
        freq_data = torch.bincount(labels, minlength=10).double()/len(labels)
        net = load_feature_net(ds)
        for start in sorted({0, T//3, 2*T//3, T}):
            m = score(model, ds, start, x_test, net, freq_data)
            rows[Path(d).name, ds, start] = [Path(d).name, ds, start, STEPS//(start + 1), round(m['fid'], 1), round(m['kid'], 1),
                                                  round(m['class_freq_max_err'], 3)]
            print(rows[Path(d).name, ds, start], f"{m['seconds']:.0f} s", flush=True)
    cmd = f"OMP_NUM_THREADS=1 python nbs/results/daebm_annealed_start.py {' '.join(run_dirs)}"
    if cmd not in res['commands']: res['commands'].append(cmd)
    res['table']['rows'] = [rows[k] for k in sorted(rows)]
    res.update(date=str(datetime.date.today()), machine=f'{platform.machine()}, torch {torch.__version__}, one core (two jobs on 2 cores)')
    OUT.write_text(json.dumps(res, indent=1) + '\n')

if __name__ == '__main__': main(sys.argv[1:])
