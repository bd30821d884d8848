"""`python -m litellm_failover_plugin.testing --port 9101 --name primary`: a fake upstream process."""

from .fake_upstream import main

main()
