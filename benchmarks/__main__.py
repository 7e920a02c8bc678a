import sys

from polymodal.benchmarks.cli import main

sys.exit(main())
