"""make test-<distro>-libs: fail unless the venv runs exactly the pinned versions.

    python tests/distros/check_pins.py tests/distros/ubuntu-22.04.txt

Run by the venv's interpreter before the suite: the interpreter's minor version
must be the pin file's ``# python=3.N`` and every ``NAME==VERSION`` line must be
what importlib.metadata reports, so a dependency of a test tool that upgraded
a pinned library cannot turn the stage into a run on PyPI's newest versions
unnoticed.  Lines with other operators (build-time constraints) are not checked.
"""

import re
import sys
from importlib import metadata


def pins(path):
    python, wanted = None, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"#\s*python=(3\.\d+)\s*$", line)
            if m:
                python = m.group(1)
            line = line.split("#", 1)[0].strip()
            if "==" in line:
                name, version = line.split("==", 1)
                wanted[name.strip()] = version.strip()
    return python, wanted


def main(path):
    python, wanted = pins(path)
    bad = []
    have_python = "%d.%d" % sys.version_info[:2]
    print(f"{'python':18} {have_python:10} {sys.executable}")
    if python != have_python:
        bad.append(f"python {have_python} (pinned {python})")
    for name, version in wanted.items():
        try:
            have = metadata.version(name)
        except metadata.PackageNotFoundError:
            have = "missing"
        print(f"{name:18} {have:10}{'' if have == version else '  != ' + version}")
        if have != version:
            bad.append(f"{name} {have} (pinned {version})")
    if bad:
        sys.exit(f"{path}: not the pinned versions: {', '.join(bad)}")


if __name__ == "__main__":
    main(sys.argv[1])
