"""Phone calls through a configurable HTTP provider: the SMS transport's request, with
a message written to be read aloud (no link)."""

from .base import Envelope
from .sms import MAX_MESSAGE, SmsTransport


class PhoneTransport(SmsTransport):
    kind = "phone"

    def text(self, envelope: Envelope) -> str:
        text = f"opscenter alert. {envelope.headline()}"
        return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"
