"""Print the import graph of mlops_nb: one line per module, the mlops_nb modules it imports (at the top or inside
a function), with the floor of each (1 core/contracts, 2 phases, 3 orchestration and products).
Standalone (AST only, imports nothing of ours), so it runs on any checkout: `python benchmarks/import_graph.py [DIR]`."""
import ast, re, sys
from pathlib import Path

PHASES = {"ingest", "validate", "wrangle", "split", "train", "evaluate", "acceptance", "package", "serve", "monitor"}

def floor(mod: str, pkg: Path) -> int:
    if mod == "core" or mod in FLOOR1: return 1
    return 2 if mod in PHASES else 3

def imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 or node.module == "mlops_nb" or (node.module or "").startswith("mlops_nb."):
                base = (node.module or "").removeprefix("mlops_nb").lstrip(".") if node.level == 0 else (node.module or "")
                if base: out.add(base.split(".")[0])
                else: out.update(a.name for a in node.names)          # from . import x / from mlops_nb import x
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("mlops_nb."))
    return out

pkg = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]/"mlops_nb")
mods = sorted(p.stem for p in pkg.glob("*.py") if not p.stem.startswith("_"))
# floor 1: core and the modules of notebooks numbered 00x (the shared contracts)
nbs = pkg.parent/"notebooks"
# (the whole name: `default_exp served` does not put `serve` on floor 1)
FLOOR1 = {m for m in mods if any(re.search(rf'"#\|\s*default_exp\s+{re.escape(m)}(\\n)?"', nb.read_text())
                                 for nb in nbs.glob("00*.ipynb"))}
bad = 0
for m in sorted(mods, key=lambda m: (floor(m, pkg), m)):
    deps = sorted(d for d in imports(pkg/f"{m}.py") - {m} if d in mods)
    up = [d for d in deps if floor(d, pkg) >= floor(m, pkg) and not (floor(m, pkg) == 1 and floor(d, pkg) == 1)
          and floor(m, pkg) < 3]
    bad += len(up)
    print(f"[{floor(m, pkg)}] {m:<11} -> {', '.join(deps) or '-'}" + (f"   VIOLATES: {', '.join(up)}" if up else ""))
print(f"{bad} import(s) against the layer rule")
