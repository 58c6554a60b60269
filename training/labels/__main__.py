"""`python -m training.labels`: see `training.labels.soft`."""

from training.labels.soft import main

raise SystemExit(main())
