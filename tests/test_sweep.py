"Sweeps end to end: a real 2 x 2 grid through submitit, killed in the middle, restarted, then tabulated."
import os, json, time, signal, subprocess
import pytest
from pathlib import Path
from latent_ebm_nb.run_dirs import run_state, read_meta, checkpoint_step

STEPS = 300
ARGS = ['sweep', 'train_lebm', '-p', 'preset', 'tiny', '-p', 'steps', str(STEPS), '-p', 'ckpt_every', '50', '-p', 'n_train', '300',
        '-p', 'n_test', '50', '-p', 'n_fid', '0', '-p', 'use_ebm', 'True,False', '-p', 'seed', '0,1', '--jobs', '2']
POINTS = {'use_ebm=True,seed=0', 'use_ebm=True,seed=1', 'use_ebm=False,seed=0', 'use_ebm=False,seed=1'}

def points(out:Path)->set[str]: return {p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith('.')}

@pytest.mark.slow
def test_sweep_killed_restarted_then_tabled(lebm, root, tmp_path):
    out = tmp_path/'sw'
    cmd = lebm + ARGS + ['--out', str(out)]
    p = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:                        # kill once a point has finished and another is in the middle (a checkpoint past step 0)
        t0, mid = time.monotonic(), []
        while True:
            assert p.poll() is None, f"the sweep ended (rc {p.returncode}) before it could be interrupted"
            assert time.monotonic() - t0 < 480, "no point finished within 480 s"
            dirs = [out/n for n in POINTS if (out/n).is_dir()]
            done = [d for d in dirs if run_state(d) == 'finished']
            mid = [d for d in dirs if d not in done and 0 < (checkpoint_step(d/'checkpoint.pt') or 0) < STEPS]
            if done and mid: break
            time.sleep(0.1)
    finally:
        os.killpg(p.pid, signal.SIGKILL); p.wait()
    finished_before = {d.name for d in (out/n for n in POINTS) if d.is_dir() and run_state(d) == 'finished'}
    interrupted = {d.name for d in mid if run_state(d) != 'finished'}
    assert finished_before and interrupted
    r = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=900)        # the same command again
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert points(out) == POINTS                                                           # one directory per point, no other
    for n in POINTS:
        h = read_meta(out/n)['history']
        assert run_state(out/n) == 'finished' and json.loads((out/n/'metrics.json').read_text())['steps'] == STEPS
        assert sum('seconds' in e for e in h) == 1, (n, h)                               # finished exactly once
        if n in finished_before: assert len(h) == 1, (n, h)                              # not run again
        if n in interrupted: assert len(h) == 2 and h[1]['resume'] and h[1]['from_step'] > 0, (n, h)   # resumed from its checkpoint
        assert f"skip   {n}" in r.stdout if n in finished_before else f"resume {n}" in r.stdout if n in interrupted else True
    for n in interrupted: assert f"resume {n} from step" in r.stderr
    assert "4 points" in r.stdout and "0 failed" in r.stdout
    t = subprocess.run(lebm + ['table', str(out), '--rows', 'use_ebm', '--by', 'seed', '--metric', 'test_recon_mse'],
                       cwd=root, capture_output=True, text=True, timeout=300)
    assert t.returncode == 0, t.stderr[-3000:]
    mse = {n: json.loads((out/n/'metrics.json').read_text())['test_recon_mse'] for n in POINTS}
    cell = lambda e, s: f"{mse[f'use_ebm={e},seed={s}']:.4g}"
    assert t.stdout.splitlines()[:4] == ['| use_ebm | seed=0 | seed=1 |', '|---|---|---|',
                                         f"| False | {cell(False, 0)} | {cell(False, 1)} |", f"| True | {cell(True, 0)} | {cell(True, 1)} |"]
    assert {f.name for f in out.glob('table-*')} == {'table-test_recon_mse.md', 'table-test_recon_mse.csv', 'table-test_recon_mse.png'}

def test_sweep_validates_every_point_first(lebm, root, tmp_path):
    out = tmp_path/'bad'
    r = subprocess.run(lebm + ['sweep', 'train_lebm', '-p', 'preset', 'tiny', '-p', 'steps', '5,x', '-p', 'seed', '0,1', '--out', str(out)],
                       cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "2 of 4 points are invalid (nothing was run)" in r.stderr
    assert "point steps=x,seed=0: parameter 'steps' expects int, got 'x'" in r.stderr and not out.exists()
    r = subprocess.run(lebm + ['sweep', 'train_lebm', '-p', 'seed', '0,1', '--jobs', str(os.cpu_count() + 1), '--out', str(out)],
                       cwd=root, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and 'more than the' in r.stderr and not out.exists()

@pytest.mark.slow
def test_sweep_keeps_going_past_a_failed_point(lebm, root, tmp_path):
    out = tmp_path/'f'
    r = subprocess.run(lebm + ['sweep', 'quickstart', '-p', 'n_steps', '20,-1', '-p', 'n_chains', '100', '--jobs', '2', '--out', str(out)],
                       cwd=root, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert "2 points: 1 run (0 resumed), 0 already finished, 1 failed" in r.stdout
    assert "FAILED n_steps=-1: run 'quickstart' failed in cell" in r.stdout and f"notebook: {out/'n_steps=-1'/'quickstart.ipynb'}" in r.stdout
    assert run_state(out/'n_steps=20') == 'finished' and run_state(out/'n_steps=-1') == 'failed'
    assert points(out) == {'n_steps=20', 'n_steps=-1'}
