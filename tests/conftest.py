import os

import pytest
from hypothesis import HealthCheck, settings

import aquasurf_fast as aq

# Deterministic example generation: CI runs the same examples every time.
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=150,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

DEVICES = ["cpu"] + (["cuda"] if aq.cuda_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param
