"""The fiotray-server bundle's entry script (packaging/fiotray-server.spec).

The console script's target, fiotray.server.cli:main, run the way the installed
`fiotray-server` script runs it. Not fiotray/server/cli.py itself as the entry script:
that would load the module a second time, as __main__, beside fiotray.server.cli.
"""

import sys

from fiotray.server.cli import main

sys.exit(main())
