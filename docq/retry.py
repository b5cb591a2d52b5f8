"""The retry policy: when a failed attempt runs again, and when an item fails for good."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from docq.config import Settings

JITTER = 0.25
"""Each delay is spread over +/-25%, so a burst of failures does not retry in lockstep."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff: ``delay = min(max_delay, base * 2 ** (attempt - 1))``, jittered.

    ``rng`` is injectable so that tests can fix the schedule.
    """

    max_attempts: int = 5
    base: float = 30.0
    max_delay: float = 3600.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, rng: random.Random | None = None) -> RetryPolicy:
        """The policy that ``settings`` describe (``--max-attempts``, ``--retry-delay``...)."""
        return cls(
            max_attempts=settings.max_attempts,
            base=settings.retry_delay,
            max_delay=settings.retry_max_delay,
            rng=rng or random.Random(),
        )

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based); never more
        than ``max_delay``, so at the cap the jitter only shortens the wait."""
        nominal = min(self.max_delay, self.base * 2.0 ** min(max(attempt - 1, 0), 60))
        return min(self.max_delay, nominal * self.rng.uniform(1 - JITTER, 1 + JITTER))

    def should_retry(self, attempt: int, *, permanent: bool, max_attempts: int | None = None) -> bool:
        """Whether an item whose attempt number ``attempt`` just failed runs again.

        ``max_attempts`` is the item's own limit (``docq enqueue --max-attempts``), if any.
        """
        return not permanent and attempt < (max_attempts or self.max_attempts)
