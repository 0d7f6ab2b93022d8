"Project structure: module layering, exported files trace to notebooks, run notebooks are well formed."
import re, json
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT/'latent_ebm_nb'
# a module may import only from modules in lower layers (style-anchors: "Layers")
LAYER = {'core': 0, 'data': 1, 'targets2d': 1, 'schedules': 1, 'metrics': 1, 'nets': 2, 'samplers': 2, 'levels': 2,
         'generators': 3, 'priors': 3, 'hierarchy': 3, 'trainer': 3, 'methods': 4, 'anomaly': 5, 'runs': 5, 'bench': 5, 'widgets': 5,
         'cli': 6, 'docs': 6}

# within a layer, only these (importer, imported) pairs
SAME_LAYER_OK = {('cli', 'docs'), ('metrics', 'targets2d'), ('levels', 'samplers')}

def layer(mod:str) -> int:
    top = mod.split('.')[0]
    if top.startswith('bench_'): return 5
    assert top in LAYER, f"module {mod} has no layer: add it to LAYER in tests/test_layout.py"
    return LAYER[top]

def imported_modules(py:Path) -> list[str]:
    "Package modules a file imports: absolute `latent_ebm_nb.x` and relative `.x`, `..x`, `from . import x` forms."
    parts = list(py.relative_to(PKG).with_suffix('').parts)
    out = re.findall(r'^\s*(?:from|import)\s+latent_ebm_nb\.([\w.]+)', py.read_text(), re.M)
    for dots, name, names in re.findall(r'^\s*from\s+(\.+)([\w.]*)\s+import\s+([\w, ]+)', py.read_text(), re.M):
        base = parts[:-1][:len(parts) - len(dots)]
        if name: out.append('.'.join(base + name.split('.')))
        else: out += ['.'.join(base + [n.strip()]) for n in names.split(',') if n.strip()]
    return out

def test_imports_point_down():
    n = 0
    for py in PKG.rglob('*.py'):
        if py.name in ('__init__.py', '_modidx.py'): continue
        mod = '.'.join(py.relative_to(PKG).with_suffix('').parts)
        for imp in imported_modules(py):
            n += 1
            if mod.startswith('methods.') and imp.startswith('methods.'):
                assert imp == mod, f"{mod} imports {imp}: methods never import each other"
                continue
            lo = layer(imp)
            same_ok = (mod.split('.')[0], imp.split('.')[0]) in SAME_LAYER_OK or (mod.startswith('bench_') and imp == 'bench')
            assert lo < layer(mod) or imp == mod or (lo == layer(mod) and same_ok), \
                f"{mod} (layer {layer(mod)}) imports {imp} (layer {lo})"
    assert n > 30, f"only {n} package imports found: the import pattern is broken"

def test_every_module_names_an_existing_notebook():
    for py in PKG.rglob('*.py'):
        if py.name in ('__init__.py', '_modidx.py'): continue
        m = re.search(r'File to edit: (\S+?)\.?$', py.read_text(), re.M)
        assert m, f"{py} has no 'File to edit' header: it was not written by nbdev_export"
        assert (py.parent/m.group(1)).resolve().exists(), f"{py} names missing notebook {m.group(1)}"

def test_run_notebooks_have_parameters_and_kernelspec():
    for p in (ROOT/'nbs'/'runs').glob('*.ipynb'):
        nb = nbformat.read(p, as_version=4)
        assert nb.metadata.get('kernelspec', {}).get('name') == 'python3', p
        tagged = [c for c in nb.cells if 'parameters' in c.metadata.get('tags', [])]
        assert len(tagged) == 1, f"{p.name}: needs exactly one cell tagged 'parameters'"
        for line in tagged[0].source.splitlines():
            if line.strip() and not line.lstrip().startswith('#'):
                assert re.match(r'^\w+\s*:\s*[\w|\[\], ]+\s*=\s*.+#\s*\S', line), f"{p.name}: '{line}' needs 'name: type = default  # help'"
                assert line.count('=') == 1, f"{p.name}: '{line}' has more than one '=': papermill skips such lines (no '=' in the help)"

def test_notebook_outputs_small():
    for p in (ROOT/'nbs').rglob('*.ipynb'):
        assert p.stat().st_size < 400_000, f"{p} is {p.stat().st_size} bytes: clear large outputs (nbdev_clean)"
