"""A gateway in front of a Twilio-style SMS API: notify's contract in, the provider's API out.

Twilio-style: ``POST {base}/2010-04-01/Accounts/{account}/Messages.json``, form-encoded ``To``, ``From`` and
``Body``, HTTP basic auth (account id, token); ``201`` with the message's ``sid``; errors as JSON
``{"code", "message", "status"}``. Many SMS vendors copy this shape; for Twilio itself notify has a built-in
provider (``"type": "twilio"``) and needs no gateway.

Run it (then ``NOTIFY_PROVIDERS='{"sms": [{"name": "sms-gw", "url": "http://gw:9200/send",
"hmac_secret": "..."}]}'``)::

    SMS_API_BASE=https://api.sms.example SMS_ACCOUNT=AC123 SMS_TOKEN=... SMS_FROM=+15005550006 \\
    GATEWAY_HMAC_SECRET=... python -m examples.gateways.twilio_style --port 9200
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from aiohttp import ClientSession, ClientTimeout, encode_basic_auth, web

from examples.gateways.gateway import Message, Outcome, create_gateway

# A refused credential or a suspended account: the operator must act; until then, wait (see gateway.py).
ACCOUNT_PROBLEMS = {401, 403}


@dataclass(frozen=True)
class TwilioStyle:
    base_url: str
    account: str
    token: str
    sender: str
    timeout_s: float = 10.0

    async def __call__(self, message: Message, session: ClientSession) -> Outcome:
        url = f"{self.base_url}/2010-04-01/Accounts/{self.account}/Messages.json"
        form = {"To": message.to, "From": self.sender, "Body": message.content}
        async with session.post(
            url,
            data=form,
            headers={"Authorization": encode_basic_auth(self.account, self.token)},
            timeout=ClientTimeout(self.timeout_s),
        ) as r:
            data = await r.json(content_type=None) if r.content_length != 0 else {}
            data = data if isinstance(data, dict) else {}
            if r.status in (200, 201):
                return Outcome.delivered(str(data["sid"]))
            error = f"HTTP {r.status}, code {data.get('code')}: {data.get('message')}"
            if r.status == 429:
                return Outcome.unavailable(error, retry_after=r.headers.get("Retry-After"), throttled=True)
            if r.status >= 500 or r.status in ACCOUNT_PROBLEMS:
                return Outcome.unavailable(error)
            return Outcome.refused(error)  # e.g. 21211 invalid 'To', 21610 recipient unsubscribed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    args = parser.parse_args(argv)
    send = TwilioStyle(
        os.environ["SMS_API_BASE"], os.environ["SMS_ACCOUNT"], os.environ["SMS_TOKEN"], os.environ["SMS_FROM"]
    )
    web.run_app(
        create_gateway(send, hmac_secret=os.environ.get("GATEWAY_HMAC_SECRET")),
        host=args.host,
        port=args.port,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
