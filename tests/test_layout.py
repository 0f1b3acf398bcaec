"""The package's layout is a contract: no import cycles between modules (the layering
itself is checked by import-linter in CI, from .importlinter)."""

from __future__ import annotations

import grimp


def test_no_import_cycles():
    graph = grimp.build_graph("simmargins", exclude_type_checking_imports=True)
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported.startswith("simmargins") and graph.chain_exists(
                importer=imported, imported=module
            ):
                back = graph.find_shortest_chain(importer=imported, imported=module)
                cycles.append(f"{module} -> {imported} -> ... -> {module}: {back}")
    assert not cycles, "\n".join(cycles)


def test_every_stage_is_a_folder():
    graph = grimp.build_graph("simmargins")
    stages = {"adapters", "engine", "resampling", "results", "session", "cli"}
    top = {m.split(".")[1] for m in graph.modules if m.count(".") >= 1}
    assert stages <= top
    flat = sorted(m for m in top if m not in stages)
    # beside the stages only the shared base modules and the entry points
    assert flat == ["__main__", "_datasets", "_errors", "_validate"], flat
