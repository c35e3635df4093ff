import sys

from fiotray.cli import main

sys.exit(main())
