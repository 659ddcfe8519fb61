"""``python -m latentbrush.plugin.cli``: the same as the ``latentbrush`` command."""

import sys

from .main import main

sys.exit(main())
