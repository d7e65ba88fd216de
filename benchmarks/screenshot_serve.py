"""Look at ``elman serve``'s page in a real headless browser and save a screenshot.

Starts ``elman serve`` on a run (``--run DIR``, default: a tiny run trained on
``builtin:many_series``), posts a few observations so that the pictures show a learned
state, and runs ``chromium --headless --screenshot`` on ``/``. The picture goes to
``docs/img/serve_page.png``. Needs Debian's ``chromium`` package (``apt install chromium``);
without it the script says so and exits with code 2.

Usage::

    python benchmarks/screenshot_serve.py [--run DIR] [--out docs/img/serve_page.png]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "serve_page.png")
    args = ap.parse_args()
    browser = next((b for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        print("no headless browser found (tried: " + ", ".join(BROWSERS) + "); "
              "install Debian's chromium package", file=sys.stderr)  # fmt: skip
        return 2
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}
    tmp = Path(tempfile.mkdtemp(prefix="serve-shot-"))
    run = args.run
    if run is None:
        run = tmp / "run"
        subprocess.run([sys.executable, "-m", "elman", "train", "--data", "builtin:many_series",
                        "--epochs", "1", "--hidden-size", "16", "--horizon", "6", "--out",
                        str(run), "--no-progress-bar"], check=True, env=env)  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "elman", "serve", str(run), "--port", "0", "--state",
         str(tmp / "state")], stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        url = next(m.group(1) for line in server.stdout if (m := re.search(r"(http://\S+)", line)))
        body = json.dumps({"observations": {"time": ["2020-01", "2020-02"],
                                            "value": [12.0, 13.5]}}).encode()  # fmt: skip
        request = urllib.request.Request(url + "/v1/series/s000/observations", body,
                                         {"content-type": "application/json"})  # fmt: skip
        try:  # a learned state in the first picture, where the run has a series s000
            urllib.request.urlopen(request, timeout=30).read()
        except urllib.error.HTTPError as exc:
            print(f"no observations posted ({exc.code}); the pictures show the run as trained")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        f"--screenshot={args.out}", "--window-size=1300,1000", url + "/"],
                       check=True, timeout=120)  # fmt: skip
        print(f"wrote {args.out}")
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
