"""Messages taken now and answered by a worker: for channels whose push cannot wait for the bot (Aliyun's SMS
replies must be answered within 700 ms). The job runs receive() as a webhook would, so the message is one turn
however often it is queued (its dedup on (channel, external_id)), and help, check-ins, tickets and the bot see it
in the same order as a Twilio SMS."""
from __future__ import annotations

import hashlib

from rq import Retry

from app.core import tasks
from app.core.errors import DomainError

# The database may be down when the job runs: tried again for about 40 minutes, then it waits in the failed
# registry, where conversations.requeue_deferred_messages picks it up again (jobs.py).
RETRY = Retry(max=6, interval=[5, 30, 120, 300, 900, 1800])


class NotQueued(DomainError):
    status = 503
    code = "service_unavailable"


def receive_later(*, channel: str, external_id: str, address: str, text: str) -> None:
    """Queue the message's turn; raises NotQueued when Redis cannot take it, so the channel's retry brings it again
    (nothing was stored: the push must not be acknowledged)."""
    job_id = f"inbound-{channel}-{hashlib.sha256(external_id.encode()).hexdigest()[:32]}"
    if not tasks.later("conversations.receive", job_id=job_id, retry=RETRY, channel=channel,
                       external_id=external_id, address=address, text=text):
        raise NotQueued("the message could not be queued; try again", code="service_unavailable")
