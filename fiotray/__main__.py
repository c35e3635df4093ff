import os
import sys

if "FIOTRAY_ASKPASS_SOCKET" in os.environ:
    # ssh running the bundled app as a copy's askpass program (fiotray.core.askpass):
    # answered before the command line is imported.
    from fiotray.core.askpass import bundled_main

    sys.exit(bundled_main(sys.argv))

from fiotray.cli import main

sys.exit(main())
