import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

import losstopo._native  # noqa: E402,F401  load the compiled core before output capture starts
