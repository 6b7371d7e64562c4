"""A stand-in for the kpay gateway, for development and tests: `kameng simulator`.

* ``GET  /pay?...``                   the pay page: checks our signature on the link, shows
                                      the payment and a "complete" button.
* ``POST /pay/{payment_id}/complete`` the buyer paid: sends a correctly signed callback to
                                      the link's ``notify_url`` (or ``--callback-url``) with a
                                      new provider transaction id (``?txn_id=`` to choose it).
* ``POST /callbacks/replay``          sends the last callback again, byte for byte.
* ``GET  /payments/{payment_id}``     what the simulator knows about a payment (JSON).

Nothing is stored on disk: a restarted simulator knows only the pay links opened since.
"""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from kameng import kpay


@dataclass
class SentCallback:
    url: str
    body: str
    status_code: int | None = None
    answer: str = ""


@dataclass
class GatewayState:
    payments: dict[str, dict[str, str]] = field(default_factory=dict)
    sent: list[SentCallback] = field(default_factory=list)

    @property
    def last(self) -> SentCallback | None:
        return self.sent[-1] if self.sent else None


def signed_callback(payment: dict[str, str], secret: str, txn_id: str) -> dict[str, str]:
    """The callback kpay sends for a completed payment, signed."""
    params = {
        "payment_id": payment["payment_id"],
        "order_no": payment["order_no"],
        "amount": payment["amount"],
        "currency": payment["currency"],
        "txn_id": txn_id,
        "status": kpay.SUCCESS,
    }
    params["sign"] = kpay.sign_callback(params, secret)
    return params


def create_simulator(secret: str, callback_url: str | None = None, *, timeout: float = 10.0) -> Starlette:
    """The simulator app. ``callback_url``, if given, overrides every link's notify_url."""
    gateway = kpay.KPay(secret, "")
    if not gateway.configured:
        raise ValueError(f"the simulator needs a secret of at least {kpay.MIN_SECRET_LENGTH} characters")
    state = GatewayState()

    async def send(url: str, body: str) -> SentCallback:
        sent = SentCallback(url, body)
        state.sent.append(sent)
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                response = await client.post(
                    url, content=body, headers={"content-type": "application/x-www-form-urlencoded"}
                )
            sent.status_code, sent.answer = response.status_code, response.text
        except httpx.HTTPError as exc:
            sent.answer = f"{type(exc).__name__}: {exc}"
        return sent

    def report(sent: SentCallback, **extra: str) -> JSONResponse:
        return JSONResponse({**extra, "url": sent.url, "statusCode": sent.status_code, "answer": sent.answer})

    async def pay_page(request: Request) -> Response:
        try:
            payment = gateway.verify_pay_request(dict(request.query_params))
        except kpay.CallbackRefused:
            return HTMLResponse("<h1>Invalid payment link</h1>", status_code=400)
        state.payments[payment["payment_id"]] = payment
        e = {k: html.escape(v) for k, v in payment.items()}
        return HTMLResponse(
            f"<!doctype html><title>kpay</title><h1>kpay simulator</h1>"
            f"<p>Order <b>{e['order_no']}</b>: <b>{e['amount']} {e['currency']}</b> (payment {e['payment_id']})</p>"
            f"<form method=post action='/pay/{e['payment_id']}/complete'><button>Pay</button></form>"
        )

    async def complete(request: Request) -> Response:
        payment = state.payments.get(request.path_params["payment_id"])
        if payment is None:
            return JSONResponse({"error": "open the pay link first"}, status_code=404)
        txn_id = request.query_params.get("txn_id") or f"KP{uuid.uuid4().hex[:20].upper()}"
        body = urlencode(signed_callback(payment, secret, txn_id))
        sent = await send(callback_url or payment["notify_url"], body)
        return report(sent, txnId=txn_id)

    async def replay(_: Request) -> Response:
        last = state.last
        if last is None:
            return JSONResponse({"error": "no callback sent yet"}, status_code=404)
        return report(await send(last.url, last.body))

    async def show(request: Request) -> Response:
        payment = state.payments.get(request.path_params["payment_id"])
        if payment is None:
            return JSONResponse({"error": "unknown payment"}, status_code=404)
        return JSONResponse(payment)

    app = Starlette(
        routes=[
            Route("/pay", pay_page, methods=["GET"]),
            Route("/pay/{payment_id}/complete", complete, methods=["POST"]),
            Route("/callbacks/replay", replay, methods=["POST"]),
            Route("/payments/{payment_id}", show, methods=["GET"]),
        ]
    )
    app.state.gateway = state
    return app
