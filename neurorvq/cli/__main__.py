"""``python -m neurorvq.cli``: the same as the ``neurorvq`` command."""

import sys

from neurorvq.cli.app import main

sys.exit(main())
