"""``python -m emollm``: the same commands as the ``emollm`` script (see :mod:`emollm.cli`)."""

import sys

from emollm.cli import main

sys.exit(main())
