"""Collect the class-imbalanced MNIST runs of DA-EBM and its persistent-EBM baseline into daebm_class_imbalance.json.

Run from the project root after the runs in RUNS (commands: `command`) have finished:
    python nbs/results/collect_daebm_class_imbalance.py [runs folder, default runs]
"""
import json, os, sys, datetime
from pathlib import Path
import torch
from latent_ebm_nb.bench.lebm import cpu_flags

COMMON = ("OMP_NUM_THREADS=1 lebm run train_daebm -p dataset mnist -p class_weights 3,3,3,3,3,1,1,1,1,1 -p n_samples 500 "
          "-p threads 1 -p long_run_steps 0 -p n_ood 200 --no-progress")
DA, PE = 'DA-EBM (mnist_cpu)', 'persistent EBM, T = 0 (mnist_ebm_persistent)'
RUNS = [  # (model, seed, run folder, extra parameters); a missing run folder keeps its committed row, or is skipped
    (DA, 0, 'daebm_mnist_imb', ''),
    (PE, 0, 'ebm_mnist_imb', '-p preset mnist_ebm_persistent'),
    (DA + ', descent from level 6', 0, 'daebm_mnist_imb_start6', '-p sample_start 6'),
    (DA + ', descent from level 6', 1, 'daebm_mnist_imb_start6_s1', '-p sample_start 6 -p seed 1'),
    (PE, 1, 'ebm_mnist_imb_s1', '-p preset mnist_ebm_persistent -p seed 1')]
def command(d:str, extra:str)->str: return f"{COMMON} {extra + ' ' if extra else ''}--out runs/{d}"
COLUMNS = ['model', 'seed', 'digits 0-4: data', 'digits 0-4: samples', 'digits 0-4: chains', 'digits 0-4: reference alone',
           'max class error: samples', 'TV: samples', 'max class error: chains', 'max class error: reference alone', 'train minutes']

def r3(v): return None if v is None else round(float(v), 3)

def row(name:str, seed:int, m:dict)->tuple[list, dict]:
    cf = m['class_freq']; low = lambda f: None if f is None else sum(f[:5])
    train_min = m.get('train_seconds', m.get('seconds'))
    return ([name, seed, r3(low(cf['data'])), r3(low(cf['samples'])), r3(low(cf.get('buffer'))), r3(low(cf.get('reference'))),
             r3(cf['samples_max_abs_err']), r3(cf['samples_tv']), r3(cf.get('buffer_max_abs_err')), r3(cf.get('reference_max_abs_err')),
             None if train_min is None else round(train_min/60, 1)],
            dict(model=name, seed=seed, **{k: [round(x, 4) for x in cf[k]] for k in ('data', 'samples', 'buffer', 'reference') if k in cf}))

def kept_rows(p:Path)->dict:
    "The committed table's rows and per-class lists by (model, seed): run folders are git-ignored, their results are not."
    if not p.exists(): return {}
    old = json.loads(p.read_text())
    return {(r[0], r[1]): (r, pc) for r, pc in zip(old['table']['rows'], old['per_class'])}

def main(runs:Path):
    p = Path('nbs/results/daebm_class_imbalance.json')
    old = kept_rows(p)
    rows, per_class, cmds = [], [], []
    for name, seed, d, extra in RUNS:
        if (runs/d/'metrics.json').exists(): r, pc = row(name, seed, json.loads((runs/d/'metrics.json').read_text()))
        elif (name, seed) in old: r, pc = old[name, seed]; print('kept from the committed table (run folder gone):', d)
        else: print('skipped (not run):', d); continue
        rows.append(r); per_class.append(pc); cmds.append(command(d, extra))
    out = dict(title="DA-EBM vs the persistent EBM on class-imbalanced MNIST: class frequencies of samples and chains",
               date=str(datetime.date.today()),
               machine=f"{os.cpu_count()} cores, CPU flags: {cpu_flags() or 'none of note'}, no GPU; torch {torch.__version__}; one core per run, two runs at once",
               note=("Training set: every image of digits 0-4 and a third of those of 5-9 (class_weights 3,3,3,3,3,1,1,1,1,1; digits 0-4 "
                     "are 75% of it). Class frequencies read by the shipped LeNet classifier: of 500 annealed-descent samples from noise "
                     "('samples'), of the persistent training chains at their lowest level at the end of training ('chains'; the T = 0 "
                     "baseline's chains are its PCD buffer) and of as many draws of the Gaussian reference alone (the untrained model), "
                     "against the training set's. Errors are absolute differences of class frequencies; TV = half the L1 distance. "
                     "'descent from level 6': a model trained by the same command and seed, its samples drawn by annealed descent "
                     "started at level 6 (`-p sample_start 6`) instead of the top level 10. 3,500 iterations each."),
               commands=cmds + ["python nbs/results/collect_daebm_class_imbalance.py"], table=dict(columns=COLUMNS, rows=rows), per_class=per_class)
    p.write_text(json.dumps(out, indent=1) + '\n'); print(p)
    for r in rows: print(dict(zip(COLUMNS, r)))

if __name__ == '__main__': main(Path(sys.argv[1] if len(sys.argv) > 1 else 'runs'))
