"Run directories as a researcher uses them: no lost runs, resume after a kill, live progress (real `lebm run` subprocesses)."
import os, json, time, signal, subprocess
import pytest
from pathlib import Path
from latent_ebm_nb.run_dirs import run_state, read_meta, checkpoint_step, settled_state

def run(lebm, root, *args, **kw):
    return subprocess.run(lebm + list(args), cwd=root, capture_output=True, text=True, timeout=600, **kw)

def snapshot(d:Path)->dict:
    "Every file under `d` with its bytes."
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob('*')) if p.is_file()}

QS = ['-p', 'n_steps', '40', '-p', 'n_chains', '200', '--no-progress']

@pytest.mark.slow
def test_run_into_finished_run_is_refused_and_changes_nothing(lebm, root, tmp_path):
    out = tmp_path/'qs'
    assert run(lebm, root, 'run', 'quickstart', *QS, '--out', str(out)).returncode == 0
    before = snapshot(out)
    assert {'params.json', 'metrics.json', 'quickstart.ipynb'} <= set(before)
    for args in (['quickstart', *QS], ['quickstart', '-p', 'n_steps', '99'], ['train_lebm', '-p', 'preset', 'tiny']):
        r = run(lebm, root, 'run', *args, '--out', str(out))
        assert r.returncode == 2, r.stderr[-2000:]
        assert f"{out} already holds a finished run of 'quickstart' with n_steps=40, n_chains=200" in r.stderr
        assert 'pass --overwrite to replace it' in r.stderr and 'Executing' not in r.stderr
        assert snapshot(out) == before                       # every file byte-identical, none added or removed
    r = run(lebm, root, 'run', '--resume', str(out))
    assert r.returncode == 2 and 'nothing to resume' in r.stderr and snapshot(out) == before
    r = run(lebm, root, 'run', 'quickstart', '-p', 'n_steps', '30', '-p', 'n_chains', '200', '--no-progress', '--out', str(out), '--overwrite')
    assert r.returncode == 0, r.stderr[-2000:]
    assert read_meta(out)['overrides'] == {'n_steps': 30, 'n_chains': 200} and json.loads((out/'metrics.json').read_text())['n_steps'] == 30

def test_overwrite_never_deletes_a_folder_that_is_not_a_run(lebm, root, tmp_path):
    (tmp_path/'mine').mkdir(); (tmp_path/'mine'/'notes.txt').write_text('keep')
    r = run(lebm, root, 'run', 'quickstart', *QS, '--out', str(tmp_path/'mine'), '--overwrite')
    assert r.returncode == 2 and 'not replaced, even with --overwrite' in r.stderr
    assert snapshot(tmp_path/'mine') == {'notes.txt': b'keep'}

AD = ['-p', 'preset', 'tiny', '-p', 'steps', '120', '-p', 'eval_every', '20', '-p', 'n_evals', '4', '-p', 'eval_n', '200', '-p', 'seed', '3']

def kill_after_first_checkpoint(cmd, root, out:Path, steps:int, past:int=0)->int:
    "Start `cmd` in its own process group, SIGKILL the whole group once `out` has a checkpoint past step `past`; the step then."
    p = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        t0 = time.monotonic()
        while not (checkpoint_step(out/'checkpoint.pt') or 0) > past:
            assert p.poll() is None, f"the run ended (rc {p.returncode}) before its first checkpoint"
            assert time.monotonic() - t0 < 300, "no checkpoint within 300 s"
            time.sleep(0.05)
    finally:
        os.killpg(p.pid, signal.SIGKILL); p.wait()
    # the kernel runs in its own session and may write one more checkpoint while it exits: read the step once it settles
    settled_state(out); step, t0 = checkpoint_step(out/'checkpoint.pt'), time.monotonic()
    while time.monotonic() - t0 < 3:
        time.sleep(0.25)
        if (s := checkpoint_step(out/'checkpoint.pt')) != step: step, t0 = s, time.monotonic()
    assert past < step < steps, f"killed at step {step}: not in the middle of the run (past step {past})"
    return step

def test_anomaly_killed_then_resumed_equals_uninterrupted(lebm, root, tmp_path):
    ref, out = tmp_path/'ref', tmp_path/'killed'
    full = subprocess.Popen(lebm + ['run', 'anomaly', *AD, '--out', str(ref), '--no-progress'], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    step = kill_after_first_checkpoint(lebm + ['run', 'anomaly', *AD, '--out', str(out)], root, out, 120)
    assert run_state(out) in ('interrupted', 'running')            # no end recorded (its kernel may still be exiting)
    r = run(lebm, root, 'run', 'anomaly', *AD, '--out', str(out))  # the same command again: refused, with the way on
    assert r.returncode == 2 and 'an interrupted run' in r.stderr and f'lebm run --resume {out}' in r.stderr
    r = run(lebm, root, 'run', '--resume', str(out), '-p', 'steps', '200')
    assert r.returncode == 2 and 'conflicting -p: steps=200 (the run has 120)' in r.stderr
    r = run(lebm, root, 'run', '--resume', str(out), '-p', 'seed', '3', '--no-progress')   # repeating a stored value is fine
    assert r.returncode == 0, r.stderr[-3000:]
    assert f'resumed from step {step}' in r.stdout
    assert full.wait(timeout=600) == 0, full.stderr.read()[-3000:]
    m, mr = json.loads((out/'metrics.json').read_text()), json.loads((ref/'metrics.json').read_text())
    assert [s for s, _ in m['auprcs']] == [60, 80, 100, 120]
    assert m['auprcs'] == mr['auprcs']                              # the same AUPRC list, exactly
    assert m['full_test'] == mr['full_test'] and m['steps'] == 120
    h = read_meta(out)['history']
    assert len(h) == 2 and 'seconds' not in h[0] and h[1]['resume'] and h[1]['from_step'] == step and 'seconds' in h[1]
    assert run_state(out) == 'finished'
    steps = lambda d: [json.loads(l)['step'] for l in (d/'metrics.jsonl').read_text().splitlines()]
    assert steps(out) == steps(ref) and steps(out)[-1] == 120        # the log continues where the checkpoint was: nothing twice

DH = ['-p', 'preset', 'tiny', '-p', 'gen_steps', '20', '-p', 'prior_steps', '200', '-p', 'ckpt_every', '2', '-p', 'n_train', '500',
      '-p', 'n_test', '100', '-p', 'n_prior', '100', '-p', 'n_fid', '0', '-p', 'equal_time', 'False', '-p', 'seed', '2']

@pytest.mark.slow
def test_diffusion_hebm_killed_in_its_prior_phase_then_resumed_equals_uninterrupted(lebm, root, tmp_path):
    "Two phases in one run directory (generator, then prior) and a third (the short-run prior): a kill in phase 2 loses nothing."
    ref, out = tmp_path/'ref', tmp_path/'killed'
    full = subprocess.Popen(lebm + ['run', 'train_diffusion_hebm', *DH, '--out', str(ref), '--no-progress'], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    step = kill_after_first_checkpoint(lebm + ['run', 'train_diffusion_hebm', *DH, '--out', str(out)], root, out, 220, past=20)
    r = run(lebm, root, 'run', '--resume', str(out), '--no-progress')
    assert r.returncode == 0, r.stderr[-3000:]
    assert full.wait(timeout=600) == 0, full.stderr.read()[-3000:]
    m, mr = json.loads((out/'metrics.json').read_text()), json.loads((ref/'metrics.json').read_text())
    assert m['prior_hole'] == mr['prior_hole'] and m['test_recon_mse'] == mr['test_recon_mse']   # exactly the same numbers
    assert (m['gen_steps'], m['prior_steps'], m['short_run_steps']) == (20, 200, 200)
    ph = json.loads((out/'phases.json').read_text())
    assert [ph[k]['step'] for k in ('generator', 'prior', 'short_run')] == [20, 220, 200]
    assert read_meta(out)['history'][1]['from_step'] == step

@pytest.mark.slow
def test_lebm_run_shows_training_progress(lebm, root, tmp_path):
    r = run(lebm, root, 'run', 'train_lebm', '-p', 'preset', 'tiny', '-p', 'steps', '60', '-p', 'n_train', '200', '-p', 'n_test', '50',
            '-p', 'n_fid', '0', '--out', str(tmp_path/'p'))
    assert r.returncode == 0, r.stderr[-3000:]
    bars = [l for l in r.stderr.replace('\r', '\n').splitlines() if l.startswith('train:')]
    assert bars and '60/60' in bars[-1] and 'it/s' in bars[-1] and 'loss_g ' in bars[-1], r.stderr[-2000:]
    assert 'Executing' in r.stderr                                  # papermill's cell counter as well
    snap = json.loads((tmp_path/'p'/'progress.json').read_text())
    assert snap['step'] == snap['steps'] == 60 and snap['done'] and snap['rate'] > 0 and 'loss_g' in snap['metrics']
