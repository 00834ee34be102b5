"""The README's PyTorch recipe run as written: a copy of a karpathy/makemore checkout (makemore.py and
names.txt, unmodified) gets the README's workbench.toml, stdout_metrics.py and Dockerfile, then
`workbench run makemore -p steps=N --wait` in a fresh data dir. Prints the first build's time (the image is
removed first unless --warm), the run's time, what the build downloaded, the image's size and the metrics.

    python benchmarks/makemore_recipe.py PATH/TO/makemore [--steps 501] [--warm]
Target (issue 22 item 9): the recipe works as written; its first-build figures are the README's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "recipes"))
from readme_blocks import recipe  # noqa: E402

FILES = ("makemore/workbench.toml", "makemore/stdout_metrics.py", "makemore/Dockerfile")
DOWNLOAD = re.compile(r"Downloading \S+ \(([\d.]+) (kB|MB|GB)\)")
UNIT = {"kB": 1e-3, "MB": 1.0, "GB": 1e3}


def workbench(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workbench", *args], env=env, cwd=cwd, capture_output=True,
                          text=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkout", type=Path, help="a karpathy/makemore checkout (makemore.py, names.txt)")
    parser.add_argument("--steps", type=int, default=501)
    parser.add_argument("--warm", action="store_true", help="keep an image already built for this Dockerfile")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wb-makemore-"))
    project = work / "makemore"
    shutil.copytree(args.checkout, project, ignore=shutil.ignore_patterns(".git"))
    for name in FILES:
        (project / Path(name).name).write_text(recipe(name).text)
    env = {**os.environ, "WORKBENCH_HOME": str(work / "home")}
    if not args.warm:
        tags = subprocess.run(["docker", "images", "workbench/makemore", "--format", "{{.Repository}}:{{.Tag}}"],
                              capture_output=True, text=True).stdout.split()
        if tags:
            subprocess.run(["docker", "rmi", "-f", *tags], capture_output=True)
    started = time.monotonic()
    done = subprocess.Popen([sys.executable, "-m", "workbench", "run", "makemore", "-p", f"steps={args.steps}",
                             "--wait"], env=env, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    built_at = None
    downloaded_mb = 0.0
    for line in done.stdout or ():
        sys.stdout.write(line)
        if built_at is None and " started (docker)" in line:
            built_at = time.monotonic()
        if match := DOWNLOAD.search(line):
            downloaded_mb += float(match[1]) * UNIT[match[2]]
    code = done.wait()
    ended = time.monotonic()
    runs = json.loads(workbench("runs", "list", "--json", env=env, cwd=work).stdout)
    shown = json.loads(workbench("runs", "show", runs[0]["id"], "--json", env=env, cwd=work).stdout)
    print(json.dumps({
        "exit": code, "status": shown["status"], "verdict": shown.get("verdict"),
        "first_build_s": round(built_at - started, 1) if built_at else None,
        "run_s": round(ended - (built_at or started), 1),
        "downloaded_mb": round(downloaded_mb), "image_gib": round((shown.get("image_size") or 0) / 2**30, 1),
        "metrics": {k: v["last"] for k, v in shown["metrics"].items()},
        "checks": shown["checks"],
    }, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
