"""`python -m training.evaluate`: see `training.evaluate.run`."""

from training.evaluate.run import main

raise SystemExit(main())
