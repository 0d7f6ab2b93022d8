"`lebm check`: every paper preset scaled down on the CPU (in-process and through the CLI), failures by preset, the DDP check."
import io, json, contextlib, subprocess
import pytest, torch
from latent_ebm_nb.check import run_check, check_presets, check_preset, ddp_check, ddp_plan
from latent_ebm_nb.methods import METHODS
from latent_ebm_nb.cli import main

def test_tiny_check_covers_every_method_and_paper_preset():
    rep = run_check('cpu', tiny=True, bf16=True, iters=1)
    assert [(r['method'], r['preset']) for r in rep['rows']] == [(n, p) for n, s in METHODS.items() for p in s.paper_presets]
    assert {r['method'] for r in rep['rows']} == set(METHODS)
    assert rep['ok'] and all(r['ok'] and r['on_device'] and r['error'] is None for r in rep['rows']), rep['rows']
    # bf16 timed wherever the config has a precision setting (every method but DRL)
    assert [r['method'] for r in rep['rows'] if r['bf16_s_per_iter'] is None] == ['drl']
    assert all(r['s_per_iter'] > 0 and r['sample_s'] > 0 and r['peak_mib'] is None for r in rep['rows'])

def test_cli_tiny_json(lebm, tmp_path, root):
    out = tmp_path/'check.json'
    r = subprocess.run(lebm + ['check', '--device', 'cpu', '--tiny', '--json', str(out)], cwd=root, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rep = json.loads(out.read_text())
    assert rep['ok'] and rep['tiny'] and rep['device'] == 'cpu' and rep['ddp'] is None
    assert [(x['method'], x['preset']) for x in rep['rows']] == check_presets()
    assert 'all passed (9 presets' in r.stdout and 'lebm check on cpu' in r.stdout

def test_a_failing_preset_is_named_and_the_others_run():
    f, e = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(f), contextlib.redirect_stderr(e):
        code = main(['check', '--device', 'meta', '--tiny', '--methods', 'drl,lebm', '--iters', '1'])
    assert code == 1
    out = f.getvalue()
    for m, p in [('drl', 'toy_paper'), ('lebm', 'svhn_code'), ('lebm', 'svhn_paper')]: assert f'error: {m} {p}: ' in out, out
    assert 'FAILED (3 presets' in out

def test_unknown_method_is_bad_input():
    with contextlib.redirect_stderr(io.StringIO()) as e: assert main(['check', '--tiny', '--methods', 'lebmm']) == 2
    assert "unknown method 'lebmm'" in e.getvalue()

def test_ddp_selection():
    cuda, cpu = torch.device('cuda'), torch.device('cpu')
    assert ddp_plan(cuda, 8) == (8, 'nccl', 'cuda') and ddp_plan(cuda, 2) == (2, 'nccl', 'cuda')
    assert ddp_plan(cuda, 1) is None and ddp_plan(cuda, 8, False) is None and ddp_plan(cpu, 0) is None
    assert ddp_plan(cpu, 0, True) == (2, 'gloo', 'cpu')

@pytest.mark.slow
def test_ddp_check_gloo_two_processes():
    r = ddp_check(2, 'gloo', 'cpu', timeout=300)
    assert r['ok'] and r['error'] is None, r
