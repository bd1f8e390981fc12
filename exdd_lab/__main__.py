"""``python -m exdd_lab`` is the ``exdd-lab`` command."""
import sys

from exdd_lab.cli import main

sys.exit(main())
