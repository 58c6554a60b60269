"""`python -m training.distill`: see `training.distill.loop`."""

from training.distill.loop import main

raise SystemExit(main())
