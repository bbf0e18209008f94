"""How much work the randomised tests do: one switch for CI and for a long soak.

``EVENTSTORE_HYPOTHESIS_PROFILE`` picks the hypothesis budget: ``default`` (what
``pytest`` and ``.ci/run`` use: seconds per backend) or ``thorough`` (ten times the
examples, longer runs: minutes per backend). Applied per test, so other suites keep
their own hypothesis settings.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE_ENV = "EVENTSTORE_HYPOTHESIS_PROFILE"

_PROFILES = {
    "default": settings(
        max_examples=20,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    ),
    "thorough": settings(
        max_examples=200,
        stateful_step_count=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    ),
}


def hypothesis_settings() -> settings:
    """The profile named by ``$EVENTSTORE_HYPOTHESIS_PROFILE`` (``default`` if unset)."""
    name = os.environ.get(PROFILE_ENV, "default")
    try:
        return _PROFILES[name]
    except KeyError:
        raise ValueError(f"{PROFILE_ENV}={name!r}: choose one of {sorted(_PROFILES)}") from None


def thorough_settings() -> settings:
    """The long budget, used by the ``slow`` variants whatever the environment says."""
    return _PROFILES["thorough"]
