"""Collect the class-imbalanced MNIST runs of DA-EBM and its persistent-EBM baseline into daebm_class_imbalance.json.

Run from the project root after the two runs (commands in COMMANDS) have finished:
    python nbs/results/collect_daebm_class_imbalance.py [runs folder, default runs]
"""
import json, os, sys, datetime
from pathlib import Path
import torch
from latent_ebm_nb.bench.lebm import cpu_flags

RUNS = {'DA-EBM (mnist_cpu)': 'daebm_mnist_imb', 'persistent EBM, T = 0 (mnist_ebm_persistent)': 'ebm_mnist_imb'}
COMMON = ("OMP_NUM_THREADS=1 lebm run train_daebm -p dataset mnist -p class_weights 3,3,3,3,3,1,1,1,1,1 -p n_samples 500 "
          "-p threads 1 -p long_run_steps 0 -p n_ood 200 --no-progress")
COMMANDS = [f"{COMMON} --out runs/daebm_mnist_imb", f"{COMMON} -p preset mnist_ebm_persistent --out runs/ebm_mnist_imb",
            "python nbs/results/collect_daebm_class_imbalance.py"]
COLUMNS = ['model', 'digits 0-4: data', 'digits 0-4: samples', 'digits 0-4: chains', 'digits 0-4: reference alone',
           'max class error: samples', 'TV: samples', 'max class error: chains', 'max class error: reference alone', 'train minutes']

def r3(v): return None if v is None else round(float(v), 3)

def row(name:str, m:dict)->tuple[list, dict]:
    cf = m['class_freq']; low = lambda f: None if f is None else sum(f[:5])
    train_min = m.get('train_seconds', m.get('seconds'))
    return ([name, r3(low(cf['data'])), r3(low(cf['samples'])), r3(low(cf.get('buffer'))), r3(low(cf.get('reference'))),
             r3(cf['samples_max_abs_err']), r3(cf['samples_tv']), r3(cf.get('buffer_max_abs_err')), r3(cf.get('reference_max_abs_err')),
             None if train_min is None else round(train_min/60, 1)],
            dict(model=name, **{k: [round(x, 4) for x in cf[k]] for k in ('data', 'samples', 'buffer', 'reference') if k in cf}))

def main(runs:Path):
    rows, per_class = [], []
    for name, d in RUNS.items():
        m = json.loads((runs/d/'metrics.json').read_text())
        r, pc = row(name, m); rows.append(r); per_class.append(pc)
    out = dict(title="DA-EBM vs the persistent EBM on class-imbalanced MNIST: class frequencies of samples and chains",
               date=str(datetime.date.today()),
               machine=f"{os.cpu_count()} cores, CPU flags: {cpu_flags() or 'none of note'}, no GPU; torch {torch.__version__}; one core per run, the two runs at once",
               note=("Training set: every image of digits 0-4 and a third of those of 5-9 (class_weights 3,3,3,3,3,1,1,1,1,1; digits 0-4 "
                     "are 75% of it). Class frequencies read by the shipped LeNet classifier: of 500 annealed-descent samples from noise "
                     "('samples'), of the persistent training chains at their lowest level at the end of training ('chains'; the T = 0 "
                     "baseline's chains are its PCD buffer) and of as many draws of the Gaussian reference alone (the untrained model), "
                     "against the training set's. Errors are absolute differences of class frequencies; TV = half the L1 distance. "
                     "One seed per row; 3,500 iterations each."),
               commands=COMMANDS, table=dict(columns=COLUMNS, rows=rows), per_class=per_class)
    p = Path('nbs/results/daebm_class_imbalance.json'); p.write_text(json.dumps(out, indent=1) + '\n'); print(p)
    for r in rows: print(dict(zip(COLUMNS, r)))

if __name__ == '__main__': main(Path(sys.argv[1] if len(sys.argv) > 1 else 'runs'))
