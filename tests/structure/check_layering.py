#!/usr/bin/env python3
"""The dependency rule of docs/architecture.md, enforced.

Layers, lowest first; a file may include headers of its own folder and of lower layers only:

    core  <-  data  <-  {kernels, networks, symmetry}  <-  dynamics  <-  {theorems, bounds, distributed}

(distributed/ is the MPI layer: the kernels and the gradient-flow solve over the ranks of a job.)

Checked for every public header (include/emergent/<folder>/) and library source (lib/<folder>/).
lib/detail/ holds internal helpers: library sources may include them, public headers never.
Exit status 1 lists every include that crosses the rule.
"""
import pathlib
import re
import sys

LAYER = {"core": 0, "data": 1, "kernels": 2, "networks": 2, "symmetry": 2, "dynamics": 3,
         "theorems": 4, "bounds": 4, "distributed": 4}
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"](emergent/([a-z_]+)/[^">]+|detail/[^">]+)[">]', re.M)


def violations(root: pathlib.Path):
    found = []
    checked = 0
    for base, public in ((root / "include" / "emergent", True), (root / "lib", False)):
        for path in sorted(base.rglob("*.[ch]pp")):
            folder = path.relative_to(base).parts[0]
            if len(path.relative_to(base).parts) == 1:
                continue  # the umbrella header emergent.hpp includes everything by design
            if folder not in LAYER and folder != "detail":
                found.append(f"{path}: folder '{folder}' has no layer in the rule")
                continue
            checked += 1
            own = LAYER.get(folder, max(LAYER.values()))
            for match in INCLUDE.finditer(path.read_text(encoding="utf-8")):
                target, target_folder = match.group(1), match.group(2)
                if target.startswith("detail/"):
                    if public:
                        found.append(f"{path}: public header includes internal {target}")
                    continue
                if target_folder not in LAYER:
                    found.append(f"{path}: includes {target}, outside every layer")
                elif target_folder != folder and LAYER[target_folder] >= own:
                    found.append(f"{path}: {folder} (layer {own}) includes {target} "
                                 f"({target_folder}, layer {LAYER[target_folder]})")
    return found, checked


def self_test() -> bool:
    """The checker itself can fail: a kernels header including dynamics, and a public header
    including lib/detail, must both be reported; an include of core must not."""
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        (root / "include/emergent/kernels").mkdir(parents=True)
        (root / "lib/core").mkdir(parents=True)
        (root / "include/emergent/kernels/bad.hpp").write_text(
            '#include "emergent/dynamics/gradient_flow.hpp"\n#include "detail/x.hpp"\n'
            '#include "emergent/core/inputs.hpp"\n', encoding="utf-8")
        (root / "lib/core/ok.cpp").write_text('#include "emergent/core/inputs.hpp"\n', encoding="utf-8")
        found, checked = violations(root)
    return checked == 2 and len(found) == 2


def main() -> int:
    if not self_test():
        print("the layering checker failed its own negative control")
        return 1
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    found, checked = violations(root)
    for line in found:
        print(line)
    print(f"{checked} files checked, {len(found)} include(s) crossing the layering rule")
    return 1 if found or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
