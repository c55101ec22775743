"""Old path of conversations's jobs, kept for one release so that jobs queued in Redis before the upgrade still run."""
from app.services.conversations.jobs import (  # noqa: F401
    hand_over_lost_late_answers,
    queue_late_reply,
    requeue_late_replies,
)
