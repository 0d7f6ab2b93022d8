"Project structure: module layering, exported files trace to notebooks, run notebooks are well formed."
import re, json
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT/'latent_ebm_nb'
# a module may import only from modules in lower layers (style-anchors: "Layers")
LAYER = {'core': 0, 'data': 1, 'targets2d': 1, 'schedules': 1, 'metrics': 1, 'config': 1, 'testing': 1, 'nets': 2, 'features': 2, 'fid': 2, 'samplers': 2, 'levels': 2,
         'generators': 3, 'priors': 3, 'hierarchy': 3, 'trainer': 3, 'latent': 3, 'methods': 4, 'anomaly': 5, 'runs': 5, 'run_params': 5, 'run_dirs': 5, 'progress': 5, 'bench': 5, 'explorer': 5,
         'prior_effect': 5, 'check': 5, 'results': 5, 'sweep': 5, 'table': 5, 'cli': 6, 'docs': 6}

# within a layer, only these (importer, imported) pairs
SAME_LAYER_OK = {('cli', 'docs'), ('sweep', 'runs'), ('latent', 'trainer'), ('latent', 'hierarchy'), ('latent', 'generators'), ('hierarchy', 'generators'), ('metrics', 'targets2d'), ('levels', 'samplers'), ('fid', 'features'), ('explorer', 'explorer'),  # explorer.* build on each other
                ('bench', 'anomaly'), ('bench', 'prior_effect'), ('results', 'table'),
                ('run_dirs', 'run_params'), ('runs', 'run_params'), ('runs', 'run_dirs'), ('runs', 'progress'),
                ('sweep', 'run_params'), ('sweep', 'run_dirs'), ('sweep', 'progress')}  # the time-to-quality bench scores with the anomaly protocol and the prior-effect samples
# packages whose __init__.py is exported from a notebook (its imports are checked too)
EXPORTED_INITS = {'bench', 'methods'}

def layer(mod:str) -> int:
    top = mod.split('.')[0]
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

def _skip(py:Path) -> bool:
    "nbdev's own files: _modidx.py and __init__.py files not exported from a notebook."
    return py.name == '_modidx.py' or (py.name == '__init__.py' and py.parent.name not in EXPORTED_INITS)

def _bench_ok(mod:str, imp:str) -> bool:
    "A `bench` module may import the `bench` package (its registry), never another benchmark module."
    if mod.split('.')[0] != 'bench' or imp.split('.')[0] != 'bench': return False
    if imp == 'bench': return True
    name = imp.split('.')[1]        # `from . import register_bench` reads as bench.register_bench: a name, not a module
    return not ((PKG/'bench'/f'{name}.py').exists() or (PKG/'bench'/name).is_dir())

def test_imports_point_down():
    n = 0
    for py in PKG.rglob('*.py'):
        if _skip(py): continue
        mod = '.'.join(py.relative_to(PKG).with_suffix('').parts)
        for imp in imported_modules(py):
            n += 1
            if mod.startswith('methods.') and imp.startswith('methods.'):
                # the registry (methods/__init__.py) imports every method; methods never import each other
                # (a method's evaluation module, `methods.X_eval`, builds on its own model module `methods.X`)
                assert imp == mod or mod == 'methods.__init__' or mod == imp + '_eval', f"{mod} imports {imp}: methods never import each other"
                continue
            lo = layer(imp)
            same_ok = (mod.split('.')[0], imp.split('.')[0]) in SAME_LAYER_OK or _bench_ok(mod, imp)
            assert lo < layer(mod) or imp == mod or (lo == layer(mod) and same_ok), \
                f"{mod} (layer {layer(mod)}) imports {imp} (layer {lo})"
    assert n > 30, f"only {n} package imports found: the import pattern is broken"

def test_every_module_names_an_existing_notebook():
    for py in PKG.rglob('*.py'):
        if _skip(py): continue
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

def test_runtime_imports_are_runtime_requirements():
    """Every module the package imports (at the top or inside a function) comes from the standard library or from a
    distribution in settings.ini's `requirements` (not `dev_requirements`): a plain install runs every command."""
    import ast, sys, configparser
    from importlib.metadata import packages_distributions
    cp = configparser.ConfigParser(); cp.read(ROOT/'settings.ini')
    req = {re.split(r'[<>=!~\[ ]', r)[0].lower().replace('_', '-') for r in cp['DEFAULT']['requirements'].split()}
    dists = packages_distributions()
    bad = set()
    for py in PKG.rglob('*.py'):
        for node in ast.walk(ast.parse(py.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            for top in {n.split('.')[0] for n in names}:
                if top in sys.stdlib_module_names or top == 'latent_ebm_nb': continue
                if not {d.lower().replace('_', '-') for d in dists.get(top, [top])} & req: bad.add(f"{py.name}: {top}")
    assert not bad, f"imports of packages that are not runtime requirements (add them to settings.ini's requirements): {sorted(bad)}"
