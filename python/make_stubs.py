#!/usr/bin/env python3
"""Regenerate emergent/_core.pyi from the built extension (nanobind.stubgen), adding the
to_dict() that emergent/_results.py gives every record class. Run after changing the bindings:
    python python/make_stubs.py BUILD_DIR/python/_core.cpython-*.so
"""
import pathlib
import shutil
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent


def main(so: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pkg = pathlib.Path(tmp) / "emergent"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        shutil.copy(so, pkg)
        out = pathlib.Path(tmp) / "_core.pyi"
        subprocess.run([sys.executable, "-m", "nanobind.stubgen", "-q", "-m", "emergent._core", "-o", str(out)],
                       cwd=tmp, check=True)
        sys.path.insert(0, tmp)
        import emergent._core as core
        text = out.read_text()
    records = {n for n in dir(core) if isinstance(getattr(core, n), type) and hasattr(getattr(core, n), "_fields")}
    lines, result = text.splitlines(), []
    pending = None
    for line in lines:
        if pending and (line.startswith("    @") or line.startswith("    def ")):
            result += ["    _fields: tuple[str, ...]", "    def to_dict(self) -> dict:",
                       '        """The record as a dict of plain Python values (JSON-serialisable)."""', ""]
            pending = None
        result.append(line)
        if line.startswith("class ") and line[6:].split(":")[0].split("(")[0] in records:
            pending = line
    (HERE / "emergent" / "_core.pyi").write_text("\n".join(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
