"""The package's layers hold: the import contract in pyproject.toml, and no import cycle between modules."""

import pytest

grimp = pytest.importorskip("grimp")


def test_the_layers_import_only_downward():
    from importlinter.cli import lint_imports

    assert lint_imports(no_cache=True) == 0, "a module imports from a layer above its own (see above)"


def test_no_two_modules_import_each_other_even_through_others():
    graph = grimp.build_graph("hindsight_ray", cache_dir=None)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    # the package's __init__ imports nothing of its own eagerly; a package importing its children is no cycle
    done, on_path, cycles = set(), [], []

    def visit(module):
        if module in on_path:
            cycles.append(on_path[on_path.index(module):] + [module])
            return
        if module in done:
            return
        on_path.append(module)
        for imported in sorted(edges[module]):
            if not module.startswith(imported + "."):
                visit(imported)
        on_path.pop()
        done.add(module)

    for module in sorted(edges):
        visit(module)
    assert not cycles, " ; ".join(" -> ".join(c) for c in cycles)
