"""``python -m transformer_from_scratch`` is the ``tfs`` command."""

import sys

from .cli import main

sys.exit(main())
