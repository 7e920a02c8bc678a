import sys

from polymodal.builders.cli import main

sys.exit(main())
