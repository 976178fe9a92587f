"""Tests of the check framework (src/torchcourse/checks/core/), one module per module of the package."""
