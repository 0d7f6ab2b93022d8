"""Update daebm_images.json (DA-EBM on images at CPU scale) from the run directories that are present.

Each row of the table comes from one run's metrics.json (`lebm run train_daebm ...`, commands in RUNS). Rows whose
run directory is absent (runs are git-ignored; a later session may be on another machine) are kept as they are in the
JSON, so the table can be completed run by run. `summary` averages each model's rows over its seeds. Run from the
project root:
    python nbs/results/collect_daebm_images.py [runs folder, default runs]
"""
import json, sys, datetime, statistics
from pathlib import Path

COMMON = "OMP_NUM_THREADS=1 lebm run train_daebm -p n_samples 500 -p threads 1 --no-progress"
DA, L0, EBM = 'DA-EBM mnist_cpu', 'DA-EBM mnist_cpu, level0_share 0.5', 'persistent EBM, T = 0 (mnist_ebm_persistent)'
OPTS = {DA: '', L0: ' -p options level0_share=0.5', EBM: ' -p preset mnist_ebm_persistent'}
DIRS = {DA: 'daebm', L0: 'daebm_l0', EBM: 'ebm'}

def run_dir(name:str, dataset:str, seed:int)->str:
    "The run directory of a (model, data set, seed): seed 0 runs kept their first names."
    if seed == 0: return {(DA, 'mnist'): 'daebm_mnist', (DA, 'fashion_mnist'): 'daebm_fashion'}.get((name, dataset), f'{DIRS[name]}_{dataset}')
    return f'{DIRS[name]}_{dataset}_s{seed}'

def command(name:str, dataset:str, seed:int)->str:
    return f"{COMMON} -p dataset {dataset}{OPTS[name]}{f' -p seed {seed}' if seed else ''} --out runs/{run_dir(name, dataset, seed)}"

RUNS = {(n, d, s): (run_dir(n, d, s), command(n, d, s)) for n in (DA, L0, EBM) for d in ('mnist', 'fashion_mnist') for s in (0, 1, 2)}
OUT = Path('nbs/results/daebm_images.json')

def r(v, n=1): return None if v is None else round(float(v), n)

# columns after the first 12: measured by the run notebook since 2026-12-05 (None where a row's run predates them)
MORE = ['class freq max err (samples)', 'Tweedie means: FID', 'Tweedie means: KID', 'level-0 chains: n', 'level-0 chains: KID']

def row(name:str, dataset:str, seed:int, m:dict)->list:
    "One table row (the JSON's columns) from a run's metrics."
    s, ood, tw, ch = m['samples'], next(iter(m['ood'].values())), m.get('samples_tweedie') or {}, m.get('chains') or {}
    return [name, dataset, seed, m['steps'], r(m['train_seconds']/60), s['n'], r(s['fid']), r(s['kid_mean']),
            r(s['nn_dist_to_train'], 2), r(s['nn_dist_test_to_train'], 2), r(m.get('long_run_class_kept'), 2), r(ood['auroc_energy0'], 3),
            r(m['class_freq']['samples_max_abs_err'], 3), r(tw.get('fid')), r(tw.get('kid_mean')), ch.get('n'), r(ch.get('kid_mean'))]

REF = 'Gaussian reference alone (the untrained mnist_cpu: its ablation)'

def ref_row(dataset:str, seed:int, m:dict)->list:
    "The ablation row from a DA-EBM run's draws of its Gaussian reference (zero tilt: the untrained model)."
    s = m['samples_reference']
    return [REF, dataset, seed, 0, 0, s['n'], r(s['fid']), r(s['kid_mean']), r(s['nn_dist_to_train'], 2),
            r(m['samples']['nn_dist_test_to_train'], 2), None, None, r(m['class_freq'].get('reference_max_abs_err'), 3), None, None, None, None]

def fmt(v:float)->str: return f'{v:.0f}' if abs(v) >= 100 else f'{v:.3g}'

SUMMARY = ['FID', 'KID (LeNet units)', 'long-run class kept', 'OOD AUROC U(x,0)', 'class freq max err (samples)', 'level-0 chains: KID']

def summary(cols:list, rows:list)->dict:
    "Each model's mean over its seeds (and the seeds' range) of the SUMMARY columns."
    groups = {}
    for x in rows: groups.setdefault((x[0], x[1]), []).append(x)
    out = []
    for (name, ds), xs in groups.items():
        cells = []
        for c in SUMMARY:
            v = [x[cols.index(c)] for x in xs if x[cols.index(c)] is not None]
            cells.append(None if not v else fmt(statistics.mean(v)) + (f' ({fmt(min(v))}-{fmt(max(v))})' if fmt(min(v)) != fmt(max(v)) else ''))
        out.append([name, ds, ', '.join(str(x[2]) for x in xs)] + cells)
    return dict(columns=['run', 'dataset', 'seeds'] + [f'{c}: mean (range)' for c in SUMMARY], rows=out)

def main(runs:Path):
    res = json.loads(OUT.read_text())
    cols = res['table']['columns']
    if 'seed' not in cols:                                  # tables before 2026-12-05 (one seed, 0) had no seed column
        cols.insert(2, 'seed'); res['table']['rows'] = [x[:2] + [0] + x[2:] for x in res['table']['rows']]
    cols += [c for c in MORE if c not in cols]
    rows = {tuple(x[:3]): x + [None]*(len(cols) - len(x)) for x in res['table']['rows']}
    found = []
    for key, (d, cmd) in RUNS.items():
        p = runs/d/'metrics.json'
        if not p.exists(): continue
        m = json.loads(p.read_text()); rows[key] = row(*key, m); found.append(key)
        if key[0] != EBM and 'samples_reference' in m: rows[REF, *key[1:]] = ref_row(*key[1:], m)
        if cmd not in res['commands']: res['commands'].append(cmd)
    order = lambda k: (k[1] != 'mnist', 'reference' in k[0], 'T = 0' in k[0], 'level0' in k[0], k[2])   # per data set: DA-EBM, T = 0, reference
    res['table']['rows'] = [rows[k] for k in sorted(rows, key=order)]
    res['summary'] = summary(cols, res['table']['rows'])
    if found: res['date'] = str(datetime.date.today())
    OUT.write_text(json.dumps(res, indent=1) + '\n')
    print(f'{OUT}: rows updated from {len(found)} runs: {found}')
    for x in res['table']['rows']: print(x)
    for x in res['summary']['rows']: print(x)

if __name__ == '__main__': main(Path(sys.argv[1] if len(sys.argv) > 1 else 'runs'))
