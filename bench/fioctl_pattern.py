#!/usr/bin/env python3
"""The baseline for `fiotray devices --json`: a device list fetched the way fioctl does.

One process, standard library only (so its start costs no more than the interpreter's):
GET /ota/devices/ 500 per page, each page after the last (`next`), then every device as
JSON on stdout. The API token comes from the FIOCTL_TOKEN environment variable, never
from argv.

    FIOCTL_TOKEN=... python3 bench/fioctl_pattern.py API_URL FACTORY
"""

from __future__ import annotations

import json
import os
import sys
import urllib.parse
import urllib.request


def main() -> int:
    url, factory = sys.argv[1], sys.argv[2]
    headers = {"OSF-TOKEN": os.environ["FIOCTL_TOKEN"]}
    query = urllib.parse.urlencode({"factory": factory, "limit": 500})
    next_url: str | None = f"{url.rstrip('/')}/ota/devices/?{query}"
    devices: list[dict] = []
    while next_url:
        if not next_url.startswith(("http://", "https://")):
            raise SystemExit(f"not an HTTP URL: {next_url[:80]}")
        # Checked just above: only http(s), never file: or another scheme.
        request = urllib.request.Request(next_url, headers=headers)  # noqa: S310
        with urllib.request.urlopen(request, timeout=30) as reply:  # noqa: S310
            page = json.load(reply)
        devices += page["devices"]
        next_url = page.get("next")
    json.dump(devices, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
