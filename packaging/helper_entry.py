"""Entry point of the packaged privileged helper (packaging/fiotray-helper.spec).

The same as the source install's launcher (fiotray.helper.install.LAUNCHER), on the bundle's
own interpreter instead of the system's python3.
"""

import os
import sys

from fiotray.helper import fiotray_helper

os.umask(0o077)  # nothing the helper writes is for anyone but root
sys.exit(fiotray_helper.main(sys.argv[1:]))
