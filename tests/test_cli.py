"End-to-end tests of the `lebm` console script: real papermill runs in subprocesses."
import json, subprocess
import pytest
from pathlib import Path

def run(cmd, cwd, **kw):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, **kw)

def test_run_quickstart_writes_run_dir(lebm, root, tmp_path):
    out = tmp_path/'qs'
    r = run(lebm + ['run', 'quickstart', '-p', 'n_steps', '60', '-p', 'n_chains', '500', '--out', str(out)], root)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out/'quickstart.ipynb').exists() and (out/'figures'/'quickstart.png').stat().st_size > 1000
    m = json.loads((out/'metrics.json').read_text())
    assert m['n_steps'] == 60 and m['n_chains'] == 500 and 0 <= m['mode_weight_max_abs_error'] <= 1
    p = json.loads((out/'params.json').read_text())
    assert p['params']['n_steps'] == 60 and p['overrides'] == {'n_steps': 60, 'n_chains': 500} and p['seconds'] > 0
    nb = json.loads((out/'quickstart.ipynb').read_text())
    assert any('injected-parameters' in c['metadata'].get('tags', []) for c in nb['cells'])
    assert 'Executing' in r.stderr                  # papermill's progress bar was shown

def test_unknown_param_rejected_before_execution(lebm, root, tmp_path):
    out = tmp_path/'bad'
    r = run(lebm + ['run', 'quickstart', '-p', 'no_such_param', '1', '--out', str(out)], root)
    assert r.returncode == 2
    assert "unknown parameter 'no_such_param'" in r.stderr
    for name in ('n_steps', 'step_size', 'n_chains', 'seed'): assert name in r.stderr   # lists the valid ones
    assert not out.exists() and 'Executing' not in r.stderr                              # nothing ran

def test_wrong_type_rejected_before_execution(lebm, root, tmp_path):
    r = run(lebm + ['run', 'quickstart', '-p', 'n_steps', '1.5', '--out', str(tmp_path/'x')], root)
    assert r.returncode == 2 and "parameter 'n_steps' expects int, got '1.5'" in r.stderr
    assert 'Valid parameters' in r.stderr and not (tmp_path/'x').exists()
    r = run(lebm + ['run', 'quickstart', '-p', 'step_szie', '0.1'], root)
    assert r.returncode == 2 and "did you mean 'step_size'?" in r.stderr

def test_failing_run_keeps_notebook(lebm, root, tmp_path):
    out = tmp_path/'fail'
    r = run(lebm + ['run', 'quickstart', '-p', 'n_steps', '-1', '--out', str(out), '--no-progress'], root)
    assert r.returncode == 1
    nb = out/'quickstart.ipynb'
    assert str(nb) in r.stderr and 'LebmError' in r.stderr
    tb = json.dumps(json.loads(nb.read_text()))
    assert 'LebmError' in tb and 'n_steps >= 0' in tb          # the executed notebook holds the traceback
    assert 'failed' in json.loads((out/'params.json').read_text())

def test_list_shows_params(lebm, root):
    r = run(lebm + ['list'], root)
    assert r.returncode == 0 and 'quickstart' in r.stdout
    lines = r.stdout.splitlines()
    section = lines[lines.index('quickstart') + 1:]                 # the parameters listed under quickstart
    line = next(l for l in section if l.strip().startswith('n_steps'))
    assert 'int' in line and '400' in line and 'Langevin steps' in line

def test_bench_json_and_table(lebm, root):
    r = run(lebm + ['bench', 'matmul', '--quick', '--json'], root)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res['name'] == 'matmul' and res['rows'][0]['matmul GFLOP/s (n=1024)'] > 0
    assert 'langevin speed-up, all cores vs 1' in res['summary']
    r = run(lebm + ['bench'], root)
    assert r.returncode == 0 and 'matmul' in r.stdout
    r = run(lebm + ['bench', 'nope'], root)
    assert r.returncode == 2 and 'available:' in r.stderr

def test_bench_methods_quick_json(lebm, root):
    from latent_ebm_nb.methods import METHODS
    r = run(lebm + ['bench', 'methods', '--quick', '--json'], root)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert res['name'] == 'methods' and [row['method'] for row in res['rows']] == list(METHODS)
    assert all(row['s/iter'] > 0 and row['params'] > 0 for row in res['rows'])
    assert any('only ratios within one run compare' in n for n in res['notes'])

def test_table_from_run_dirs(lebm, root, tmp_path):
    "lebm table: finished runs only, mean ± standard error over seeds per row, the files written beside the runs, a mistyped metric refused."
    for use_ebm, seed, v in [(False, 0, 0.5), (False, 1, 0.6), (True, 0, 0.7), (True, 1, 0.9)]:
        d = tmp_path/f'use_ebm={use_ebm},seed={seed}'; d.mkdir()
        ps = dict(digit=4, use_ebm=use_ebm, seed=seed)
        (d/'params.json').write_text(json.dumps(dict(notebook='anomaly', params=ps, overrides=ps, seconds=1.0)))
        (d/'metrics.json').write_text(json.dumps(dict(auprc_mean=v, steps=10)))
    (tmp_path/'killed').mkdir(); (tmp_path/'killed'/'params.json').write_text(json.dumps(dict(notebook='anomaly', params={}, overrides={})))
    r = run(lebm + ['table', str(tmp_path), '--rows', 'use_ebm', '--metric', 'auprc_mean'], root)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines()[:5] == ['| use_ebm | auprc_mean |', '|---|---|', '| False | 0.550 ± 0.050 |', '| True | 0.800 ± 0.100 |', '']
    assert 'auprc_mean: mean ± standard error over 2 runs per cell' in r.stdout
    assert (tmp_path/'table-auprc_mean.csv').read_text().splitlines() == [
        'use_ebm,metric,mean,std,se,n', 'False,auprc_mean,0.55,0.07071067811865474,0.04999999999999999,2',
        'True,auprc_mean,0.8,0.14142135623730956,0.10000000000000003,2']
    assert (tmp_path/'table-auprc_mean.png').stat().st_size > 1000
    r = run(lebm + ['table', str(tmp_path), '--metric', 'auprc_men'], root)
    assert r.returncode == 2 and 'did you mean auprc_mean' in r.stderr

@pytest.mark.slow
def test_robustness_study_is_a_sweep(lebm, root, tmp_path):
    "The DA-EBM robustness study is a sweep of train_daebm over the untuned targets, archived and tabulated like any other."
    out = tmp_path/'sw'
    r = run(lebm + ['sweep', 'train_daebm', '-p', 'dataset', 'arc,random_gmm0', '-p', 'preset', 'tiny', '-p', 'steps', '10', '-p', 'n_data', '500',
                    '-p', 'n_samples', '40', '-p', 'long_run_steps', '5', '-p', 'long_run_chains', '20', '--jobs', '2', '--out', str(out)], root)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    r = run(lebm + ['archive', str(out), str(tmp_path/'study')], root)
    assert r.returncode == 0 and '2 runs archived' in r.stdout, r.stderr[-2000:]
    t = run(lebm + ['table', str(tmp_path/'study'), '--rows', 'dataset', '--metric', 'mode_weight_max_err', '--failed', '--no-figure'], root)
    assert t.returncode == 0, t.stderr[-2000:]
    rows = t.stdout.splitlines()
    assert rows[:2] == ['| dataset | mode_weight_max_err |', '|---|---|'] and rows[2].startswith('| arc | ') and rows[3].startswith('| random_gmm0 | ')

def test_archive_keeps_sample_strips(lebm, root, tmp_path):
    "lebm archive --strip samples:1 keeps the top row of each run's sample grid beside its params and metrics; a malformed --strip is refused."
    import json, torch
    from torchvision.io import read_image
    from latent_ebm_nb.runs import save_image_grid
    run_dir = tmp_path/'sw'/'use_ebm=True'
    run_dir.mkdir(parents=True)
    (run_dir/'params.json').write_text(json.dumps(dict(notebook='train_lebm', params=dict(use_ebm=True), seconds=1.0)))
    (run_dir/'metrics.json').write_text(json.dumps(dict(fid=1.0)))
    save_image_grid(torch.rand(20, 1, 28, 28)*2 - 1, 'samples', folder=run_dir/'figures')
    r = run(lebm + ['archive', str(tmp_path/'sw'), str(tmp_path/'study'), '--strip', 'samples:1'], root)
    assert r.returncode == 0 and '1 runs archived' in r.stdout, r.stderr[-2000:]
    strip = read_image(str(tmp_path/'study'/'use_ebm=True'/'figures'/'samples_rows1.png'))
    assert tuple(strip.shape) == (1, 30, 291) and (strip[0] == read_image(str(run_dir/'figures'/'samples.png'))[0, :30]).all()
    r = run(lebm + ['archive', str(tmp_path/'sw'), str(tmp_path/'study2'), '--strip', 'samples'], root)
    assert r.returncode != 0 and '--strip takes FIGURE:ROWS' in r.stderr, r.stderr[-2000:]

def _tiny_daebm_run(tmp_path):
    "A finished run directory of a tiny DA-EBM trained two steps on MNIST (checkpoint, params.json, metrics.json with fid 1.0)."
    import torch
    from latent_ebm_nb.methods import get_method
    from latent_ebm_nb.trainer import Trainer
    from latent_ebm_nb.data import load_tensors
    spec = get_method('daebm'); torch.manual_seed(0)
    model = spec.model(spec.config('tiny_image', ''))
    run_dir = tmp_path/'run'
    Trainer(model, load_tensors('mnist')[0][:64]*2 - 1, steps=2, batch_size=8, out=run_dir, progress=False).fit()
    (run_dir/'params.json').write_text(json.dumps(dict(notebook='train_daebm', params=dict(dataset='mnist'), seconds=1.0)))
    (run_dir/'metrics.json').write_text(json.dumps(dict(fid=1.0)))
    return run_dir

def test_ood_adds_aurocs_to_a_run(lebm, root, tmp_path):
    "lebm ood DIR: the run's model scored against the other data set, noise and constant images, written into its metrics.json; a folder without a checkpoint is refused."
    run_dir = _tiny_daebm_run(tmp_path)
    r = run(lebm + ['ood', str(run_dir), '--n', '40'], root)
    assert r.returncode == 0 and 'mnist vs noise' in r.stdout and '(score energy0, n=40)' in r.stdout, r.stderr[-2000:]
    m = json.loads((run_dir/'metrics.json').read_text())
    assert m['fid'] == 1.0 and sorted(m['ood_suite']) == ['mnist vs constant', 'mnist vs fashion_mnist', 'mnist vs noise', 'n', 'score']
    r = run(lebm + ['ood', str(tmp_path)], root)
    assert r.returncode == 2 and 'has no checkpoint.pt' in r.stderr, r.stderr[-2000:]

def test_longrun_adds_chains_to_a_run(lebm, root, tmp_path):
    "lebm longrun DIR: long-run chains of the run's model summarised at each mark, written into its metrics.json with the image grid; bad marks are refused."
    from torchvision.io import read_image
    run_dir = _tiny_daebm_run(tmp_path)
    r = run(lebm + ['longrun', str(run_dir), '--steps', '6', '--marks', '2,4', '--chains', '3'], root)
    assert r.returncode == 0 and '6 steps: class kept' in r.stdout, r.stderr[-2000:]
    m = json.loads((run_dir/'metrics.json').read_text())
    assert m['fid'] == 1.0 and sorted(m['long_run_extended']['marks'], key=int) == ['2', '4', '6'] and m['long_run_extended']['chains'] == 3
    grid = read_image(str(run_dir/'figures'/'long_run_extended.png'))
    assert tuple(grid.shape[1:]) == (4*29 + 1, 3*29 + 1)     # rows: the starts, then 3 marks; 3 chains of 28 px with 1 px padding
    r = run(lebm + ['longrun', str(run_dir), '--marks', 'ten'], root)
    assert r.returncode == 2 and '--marks takes comma-separated step counts' in r.stderr, r.stderr[-2000:]
