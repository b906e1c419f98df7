"""The package's layering, checked from the code: imports only run downwards.

A module of `enc_tf` may import from its own package and from packages of a lower
tier, never from a sibling of the same tier or from above. The tiers are the
ARCHITECTURE paragraph of the README.
"""

import ast
import os

import enc_tf

PACKAGE = os.path.dirname(os.path.abspath(enc_tf.__file__))

TIERS = [
    ["errors", "quiet", "machine", "version", "scratch"],
    ["files", "contracts"],
    ["console", "distribute"],
    ["layers"],
    ["state_dicts"],
    ["backbones"],
    ["models", "config"],
    ["data", "losses", "metrics", "optimizers", "visualize"],
    ["artifacts", "protocols"],
    ["convert"],
    ["presets"],
    ["evaluation", "inference", "export"],
    ["training"],
    ["demo"],
]
TIER = {name: level for level, names in enumerate(TIERS) for name in names}


def _unit(module):
    """`enc_tf.data.io` -> `data`; `enc_tf` (the package's face) -> None."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _modules(package=PACKAGE):
    """`(module name, path relative to the package's parent, parsed tree)` of every module."""
    for directory, _, files in os.walk(package):
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, os.path.dirname(package))
            module = relative[: -len(".py")].replace(os.sep, ".").removesuffix(".__init__")
            yield module, relative, ast.parse(open(path).read(), path)


def _imports(package=PACKAGE):
    """`(importing unit, imported module, file, line)` for every enc_tf import in `package`."""
    found = []
    for module, relative, tree in _modules(package):
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
                if node.module == "enc_tf":  # `from enc_tf import models`
                    targets = [f"enc_tf.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            for target in targets:
                if target == "enc_tf" or target.startswith("enc_tf."):
                    found.append((_unit(module), target, relative, node.lineno))
    return found


def test_every_module_belongs_to_a_tier():
    units = {_unit(m) for _, m, _, _ in _imports()} | {u for u, _, _, _ in _imports()}
    names = {
        os.path.splitext(entry)[0]
        for entry in os.listdir(PACKAGE)
        if not entry.startswith(("_", ".")) and (entry.endswith(".py") or "." not in entry)
    } - {"configs"}  # the shipped recipes (YAML), not a module
    assert (units - {None}) <= set(TIER) and names <= set(TIER), sorted(
        (units | names) - set(TIER) - {None}
    )


def violations(package=PACKAGE):
    """Every enc_tf import in `package` that runs against the tiers."""
    against = []
    for importer, target, path, line in _imports(package):
        imported = _unit(target)
        if importer is None:  # the package's face re-exports what users need
            continue
        if imported is None:
            against.append(f"{path}:{line} imports the whole package (import what you use)")
        elif importer != imported and TIER[imported] >= TIER[importer]:
            against.append(f"{path}:{line} {importer} (tier {TIER[importer]}) -> {target}")
    return against


def test_imports_run_downwards_only():
    against = violations()
    assert not against, "imports against the layering:\n" + "\n".join(against)


def test_the_check_sees_a_wrong_import(tmp_path):
    # The check itself: a layer importing training, or a sibling, is reported.
    fake = tmp_path / "enc_tf"
    (fake / "layers").mkdir(parents=True)
    (fake / "data").mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "layers" / "bad.py").write_text("from enc_tf.training import trainer\n")
    (fake / "data" / "sibling.py").write_text("import enc_tf.losses\nfrom enc_tf.models import x\n")
    found = sorted(violations(str(fake)))
    assert found == [
        "enc_tf/data/sibling.py:1 data (tier 7) -> enc_tf.losses",
        "enc_tf/layers/bad.py:1 layers (tier 3) -> enc_tf.training",
    ], found


# Each shared fact is assigned once, at module level, in the unit that owns it; everything else
# imports it.
HOMES = {
    "DATASETS": "config",
    "BACKBONES": "backbones",
    "CHOICES": "config",
    "SOURCES": "data",
    "PRECISIONS": "contracts",
    "BF16_CPU_FLAGS": "machine",
    "EXPORT_TOLERANCE": "export",
    "FLOAT_KEPT_SUBLAYERS": "export",
    "HOME_VARIABLE": "files",
    "IMAGENET_MEAN": "contracts",
    "IMAGENET_STD": "contracts",
}


def definitions(names, package=PACKAGE):
    """`{name: [unit, ...]}`: where each of `names` is assigned at module level."""
    found = {name: [] for name in names}
    for module, _, tree in _modules(package):
        for node in tree.body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AnnAssign):
                targets = [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id in found:
                    found[target.id].append(_unit(module))
    return found


def test_each_shared_fact_has_one_home():
    found = definitions(HOMES)
    wrong = {name: units for name, units in found.items() if units != [HOMES[name]]}
    assert not wrong, f"defined elsewhere or more than once (want {HOMES}): {wrong}"


def test_the_home_check_sees_a_second_definition(tmp_path):
    fake = tmp_path / "enc_tf"
    (fake / "models").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "config.py").write_text("DATASETS = ('a',)\n")
    (fake / "models" / "x.py").write_text("DATASETS = ('a', 'b')\nPRECISIONS: tuple = ()\n")
    found = definitions(["DATASETS", "PRECISIONS"], str(fake))
    assert found == {"DATASETS": ["config", "models"], "PRECISIONS": ["models"]}


def _is_main_guard(node):
    test = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and isinstance(test.comparators[0], ast.Constant)
        and test.comparators[0].value == "__main__"
    )


def _names(target):
    if isinstance(target, ast.Tuple):
        return all(_names(t) for t in target.elts)
    return isinstance(target, ast.Name)


def _declares(node):
    """Whether a top-level statement only imports, defines or binds names (also inside a
    `try:` that picks between imports)."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        return all(_names(t) for t in getattr(node, "targets", [getattr(node, "target", None)]))
    if isinstance(node, ast.Try):
        bodies = [node.body, node.orelse, node.finalbody] + [h.body for h in node.handlers]
        return all(_declares(n) for body in bodies for n in body)
    return False


def import_time_actions(package=PACKAGE):
    """Top-level statements of library modules that do something when imported: a bare
    call (`quiet_tensorflow()`), a loop, an assignment into another object, ... A
    program's `__main__.py` and `if __name__ == "__main__":` blocks are not imports. (A
    name bound to a call's result, `logger = logging.getLogger(__name__)`, is a binding.)"""
    found = []
    for module, relative, tree in _modules(package):
        if module.endswith("__main__"):
            continue
        for i, node in enumerate(tree.body):
            docstring = i == 0 and isinstance(node, ast.Expr)
            docstring = docstring and isinstance(node.value, ast.Constant)
            if not (docstring or _declares(node) or _is_main_guard(node)):
                found.append(f"{relative}:{node.lineno} {ast.unparse(node).splitlines()[0]}")
    return found


def test_importing_the_library_does_nothing_but_define():
    # Commands hide TensorFlow's start-up lines in _enc_tf_launch, outside the package.
    found = import_time_actions()
    assert not found, "import-time actions:\n" + "\n".join(found)


def test_the_import_time_check_sees_a_call_and_a_setting(tmp_path):
    fake = tmp_path / "enc_tf"
    fake.mkdir()
    (fake / "__init__.py").write_text('"""Doc."""\nimport os\n\nquiet()\nX, Y = 1, 2\n')
    (fake / "x.py").write_text('os.environ["A"] = "1"\nif __name__ == "__main__":\n    main()\n')
    (fake / "y.py").write_text("try:\n    import a\nexcept ImportError:\n    a.setup()\n")
    (fake / "z.py").write_text("try:\n    import a\nexcept ImportError:\n    a = None\n")
    (fake / "__main__.py").write_text("main()\n")
    assert import_time_actions(str(fake)) == [
        "enc_tf/__init__.py:4 quiet()",
        "enc_tf/x.py:1 os.environ['A'] = '1'",
        "enc_tf/y.py:1 try:",
    ]
