"""Take the console's screenshots in docs/img/ from the running app.

    python docs/screenshots.py          (same as: pytest tests/browser -m screenshots)

Needs Debian's Chromium (`apt-get install chromium`) and Playwright's Python package
(`pip install playwright`); the pictures come from tests/browser/test_screenshots.py, which
drives the admin against the live test server and its sandbox gateway.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    import pytest

    os.chdir(REPO)
    return int(pytest.main(["tests/browser", "-m", "screenshots", "-q", "-p", "no:cacheprovider"]))


if __name__ == "__main__":
    sys.exit(main())
