"""Print the GitHub Actions matrix of the CI workflow, read from nox's own session list.

``nox --json -l -s tests integration`` lists the sessions that run per Python version
(``tests`` per package, ``integration`` per flyte x torch pair) with their parameters; each
becomes one matrix entry per Python version. The workflow therefore runs exactly the sessions
the noxfile defines: adding a flyte or torch version to the noxfile adds it to CI.

Usage (in a workflow step): ``python tools/ci_matrix.py >> "$GITHUB_OUTPUT"``.
"""

from __future__ import annotations

import json
import subprocess
import sys

PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
PER_PYTHON = ("tests", "integration")


def sessions() -> list[dict[str, object]]:
    out = subprocess.run(
        # -s names the sessions: without it nox lists only the default ones
        [sys.executable, "-m", "nox", "--json", "-l", "-s", *PER_PYTHON],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    listed: list[dict[str, object]] = json.loads(out)
    return listed


def main() -> None:
    include = []
    for s in sessions():
        if s["name"] not in PER_PYTHON:
            continue
        spec = s.get("call_spec") or {}
        assert isinstance(spec, dict)
        for python in PYTHONS:
            include.append(
                {
                    "python": python,
                    "session": s["session"],
                    "package": spec.get("package", "all"),
                    "flyte": spec.get("flyte", "-"),
                    "torch": spec.get("torch", "-"),
                }
            )
    if not include:
        sys.exit("nox listed no tests/integration sessions")
    print("matrix=" + json.dumps({"include": include}, separators=(",", ":")))


if __name__ == "__main__":
    main()
