"""`python -m leaderboard build|report`, for machines without the polymodal CLI installed."""

import sys

from polymodal.leaderboard.cli import main

sys.exit(main())
