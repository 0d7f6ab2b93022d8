"""Update daebm_images.json (DA-EBM on images at CPU scale) from the run directories that are present.

Each row of the table comes from one run's metrics.json (`lebm run train_daebm ...`, commands in COMMANDS). Rows whose
run directory is absent (runs are git-ignored; a later session may be on another machine) are kept as they are in the
JSON, so the table can be completed run by run. Run from the project root:
    python nbs/results/collect_daebm_images.py [runs folder, default runs]
"""
import json, sys, datetime
from pathlib import Path

COMMON = "OMP_NUM_THREADS=1 lebm run train_daebm -p n_samples 500 -p threads 1 --no-progress"
# row name -> (run directory, dataset, command)
RUNS = {('DA-EBM mnist_cpu', 'mnist'): ('daebm_mnist', f"{COMMON} -p dataset mnist --out runs/daebm_mnist"),
        ('DA-EBM mnist_cpu', 'fashion_mnist'): ('daebm_fashion', f"{COMMON} -p dataset fashion_mnist --out runs/daebm_fashion"),
        ('DA-EBM mnist_cpu, level0_share 0.5', 'mnist'):
            ('daebm_l0_mnist', f"{COMMON} -p dataset mnist -p options level0_share=0.5 --out runs/daebm_l0_mnist"),
        ('DA-EBM mnist_cpu, level0_share 0.5', 'fashion_mnist'):
            ('daebm_l0_fashion_mnist', f"{COMMON} -p dataset fashion_mnist -p options level0_share=0.5 --out runs/daebm_l0_fashion_mnist"),
        ('persistent EBM, T = 0 (mnist_ebm_persistent)', 'mnist'):
            ('ebm_mnist', f"{COMMON} -p dataset mnist -p preset mnist_ebm_persistent --out runs/ebm_mnist"),
        ('persistent EBM, T = 0 (mnist_ebm_persistent)', 'fashion_mnist'):
            ('ebm_fashion_mnist', f"{COMMON} -p dataset fashion_mnist -p preset mnist_ebm_persistent --out runs/ebm_fashion_mnist")}
OUT = Path('nbs/results/daebm_images.json')

def r(v, n=1): return None if v is None else round(float(v), n)

# columns after the first 11: measured by the run notebook since 2026-12-05 (None where a row's run predates them)
MORE = ['class freq max err (samples)', 'Tweedie means: FID', 'Tweedie means: KID', 'level-0 chains: n', 'level-0 chains: KID']

def row(name:str, dataset:str, m:dict)->list:
    "One table row (the JSON's columns) from a run's metrics."
    s, ood, tw, ch = m['samples'], next(iter(m['ood'].values())), m.get('samples_tweedie') or {}, m.get('chains') or {}
    return [name, dataset, m['steps'], r(m['train_seconds']/60), s['n'], r(s['fid']), r(s['kid_mean']),
            r(s['nn_dist_to_train'], 2), r(s['nn_dist_test_to_train'], 2), r(m.get('long_run_class_kept'), 2), r(ood['auroc_energy0'], 3),
            r(m['class_freq']['samples_max_abs_err'], 3), r(tw.get('fid')), r(tw.get('kid_mean')), ch.get('n'), r(ch.get('kid_mean'))]

REF = 'Gaussian reference alone (the untrained mnist_cpu: its ablation)'

def ref_row(dataset:str, m:dict)->list:
    "The ablation row from a DA-EBM run's draws of its Gaussian reference (zero tilt: the untrained model)."
    s = m['samples_reference']
    return [REF, dataset, 0, 0, s['n'], r(s['fid']), r(s['kid_mean']), r(s['nn_dist_to_train'], 2),
            r(m['samples']['nn_dist_test_to_train'], 2), None, None, r(m['class_freq'].get('reference_max_abs_err'), 3), None, None, None, None]

def main(runs:Path):
    res = json.loads(OUT.read_text())
    cols = res['table']['columns']; cols += [c for c in MORE if c not in cols]
    rows = {(x[0], x[1]): x + [None]*(len(cols) - len(x)) for x in res['table']['rows']}
    found = []
    for key, (d, cmd) in RUNS.items():
        p = runs/d/'metrics.json'
        if not p.exists(): continue
        m = json.loads(p.read_text()); rows[key] = row(*key, m); found.append(key)
        if key[0].startswith('DA-EBM') and 'samples_reference' in m: rows[REF, key[1]] = ref_row(key[1], m)
        if cmd not in res['commands']: res['commands'].append(cmd)
    order = lambda k: (k[1] != 'mnist', 'reference' in k[0], 'T = 0' in k[0])   # per data set: DA-EBM, its T = 0 ablation, the reference
    res['table']['rows'] = [rows[k] for k in sorted(rows, key=order)]
    if found: res['date'] = str(datetime.date.today())
    OUT.write_text(json.dumps(res, indent=1) + '\n')
    print(f'{OUT}: rows updated from {len(found)} runs: {found}')
    for x in res['table']['rows']: print(x)

if __name__ == '__main__': main(Path(sys.argv[1] if len(sys.argv) > 1 else 'runs'))
