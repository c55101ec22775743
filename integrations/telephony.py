"""Phone calls that ask for a key press, and SMS, whichever provider carries them (docs/help.md, "Providers").

Two providers speak this interface: Twilio (`TwilioTelephony`, around integrations/twilio.py) and Alibaba
Cloud's voice and SMS services (integrations/aliyun.py). Which one reaches a number is configuration
(`choose_provider`): Twilio places no calls to mainland China numbers since 2023-11-30.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

PROVIDERS = ("twilio", "aliyun")
# TELEPHONY_PROVIDER values: one provider for every number, or by the number's prefix.
MODES = (*PROVIDERS, "by_number")


class TelephonySendError(Exception):
    """A provider refused or could not take a call or message; `code` is the provider's error code if any."""

    def __init__(self, message: str, *, code: str | None = None, transient: bool = False):
        super().__init__(message)
        self.code = code
        self.retryable = transient


@dataclass(frozen=True)
class KeyPressCall:
    """A call that tells a contact what happened and asks them to press 1 (I go) or 2 (I can't).

    `callback_base` is where Twilio fetches `/twiml` and posts `/status`; `ref` comes back in Aliyun's
    reports (OutId); `speech` fills the variables of Aliyun's approved voice templates, and `script` says which
    of them the call says (one of SCRIPTS). Twilio asks the app for the words when the call is answered, so it
    needs neither.
    """

    to: str
    callback_base: str
    ref: str
    speech: dict[str, str] = field(default_factory=dict)
    ring_seconds: int = 30
    script: str = "help"


# What a key-press call says: "help" (someone pressed the help button: can you go?), "checkin" (a missed daily
# check-in, to a contact: can you go?) and "resident" (a missed check-in, to the resident: 平安请按1).
SCRIPTS = ("help", "checkin", "resident")


@dataclass(frozen=True)
class TextMessage:
    """An SMS: `body` as written (Twilio), or the approved template `template` filled with `params` (Aliyun).

    `ref` comes back in Aliyun's receipts (OutId); `status_callback` is where Twilio posts the delivery status.
    """

    to: str
    body: str
    template: str
    params: dict[str, str] = field(default_factory=dict)
    ref: str = ""
    status_callback: str | None = None


# Words of our own (a staff reply, a notice) through a provider that sends only approved templates: the template
# has one variable, ${content}, that the words fill (Aliyun cuts them into several SMS when they are longer than
# one variable holds). GENERIC_TEMPLATE is the template for any such words that have no template of their own.
CONTENT_PARAM = "content"
GENERIC_TEMPLATE = "message"


def free_text(to: str, body: str, *, template: str = GENERIC_TEMPLATE, ref: str = "",
              status_callback: str | None = None) -> TextMessage:
    """An SMS of our own words: `body` as written (Twilio), or `template` with the words as its ${content}."""
    return TextMessage(to=to, body=body, template=template, params={CONTENT_PARAM: body}, ref=ref,
                       status_callback=status_callback)


class Telephony(Protocol):
    name: str
    # True when the provider asks us what to say after the key (Twilio's Gather); False when the words
    # after each key are fixed when the call is placed (Aliyun's MenuKeyMap): the outcome then goes by SMS.
    confirms_in_call: bool
    # The shortest time between two calls to one number that the provider places (its flow control refuses a
    # sooner one: Aliyun's voice service, 1 call a minute per number); 0: no such limit.
    min_redial_seconds: int

    def place_call(self, call: KeyPressCall) -> str: ...

    def send_text(self, message: TextMessage) -> str: ...


class TwilioTelephony:
    """Twilio behind the telephony interface: TwiML and Gather at `callback_base`, SMS as free text."""

    name = "twilio"
    confirms_in_call = True
    min_redial_seconds = 0

    def __init__(self, transport) -> None:
        self.transport = transport  # integrations.twilio SmsSender + VoiceCaller (real or recording)

    def place_call(self, call: KeyPressCall) -> str:
        return self.transport.place_call(call.to, f"{call.callback_base}/twiml", f"{call.callback_base}/status",
                                         timeout_seconds=call.ring_seconds)

    def send_text(self, message: TextMessage) -> str:
        return self.transport.send_sms(message.to, message.body, status_callback=message.status_callback)


def parse_prefixes(raw: str) -> tuple[str, ...]:
    """"+86, +852" -> ("+86", "+852"): E.164 prefixes, each with its plus."""
    return tuple("+" + p.strip().lstrip("+") for p in (raw or "").split(",") if p.strip())


def choose_provider(number: str, *, mode: str, aliyun_prefixes: tuple[str, ...]) -> str:
    """The provider that reaches `number`: fixed by `mode`, or by prefix when mode is "by_number"."""
    if mode in PROVIDERS:
        return mode
    if mode != "by_number":
        raise ValueError(f"unknown telephony mode {mode!r}; expected one of {MODES}")
    return "aliyun" if number.startswith(aliyun_prefixes) else "twilio"
