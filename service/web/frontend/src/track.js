// /orders/track: a buyer (signed in) or a guest (order number + query password) watches an
// order move through its statuses live (`orderStatusChanged`) and sees the card keys once
// it is delivered.
import { Live, connectionBadge, h, request, signInBox, token, when } from "./kameng.js";

const STEPS = ["PENDING_PAYMENT", "PAID", "DELIVERING", "DELIVERED"];
const LABELS = {
  PENDING_PAYMENT: "Waiting for payment", PAID: "Paid", DELIVERING: "Delivering", DELIVERED: "Delivered",
  COMPLETED: "Completed", CANCELLED: "Cancelled", FAILED: "Failed", REFUNDED: "Refunded",
};
const HAS_KEYS = new Set(["DELIVERED", "COMPLETED"]);

const MY_ORDERS = `query MyOrders { viewer { orders(first: 10) { edges { node {
  id orderNo status createdAt total { amount currency } product { title } } } } } }`;
const LOOKUP = `query Lookup($input: OrderLookupInput!) { orderLookup(input: $input) { id orderNo status product { title } } }`;
const ORDER = `query Order($id: ID!) { order(id: $id) { id orderNo status product { title } } }`;
const TRACK = `subscription Track($orderId: ID!, $lookup: OrderLookupInput) {
  orderStatusChanged(orderId: $orderId, lookup: $lookup) { status at note order { orderNo status } } }`;
const KEYS = `query Keys($id: ID!) { order(id: $id) { cardKeys { secret } } }`;
const GUEST_KEYS = `query GuestKeys($input: OrderLookupInput!) { orderLookup(input: $input) { cardKeys { secret } } }`;

const $ = (id) => document.getElementById(id);
const live = new Live(connectionBadge($("connection")));
let stop = null;

function showProblem(message) {
  $("problem").textContent = message;
}

async function listMyOrders() {
  const list = $("my-orders");
  list.replaceChildren();
  $("mine-hint").hidden = Boolean(token.get());
  if (!token.get()) return;
  try {
    const { viewer } = await request(MY_ORDERS);
    const orders = viewer?.orders?.edges.map((e) => e.node) || [];
    if (!orders.length) list.append(h("li", {}, "No orders yet."));
    for (const order of orders) {
      list.append(h("li", {},
        h("button", { type: "button", "data-order": order.id, onclick: () => track({ id: order.id }) }, `Track ${order.orderNo}`),
        ` ${order.product.title} · ${order.total.amount} ${order.total.currency} · ${LABELS[order.status] || order.status}`));
    }
  } catch (err) {
    showProblem(err.message);
  }
}

function renderSteps(status) {
  const reached = STEPS.indexOf(HAS_KEYS.has(status) ? "DELIVERED" : status);
  $("steps").replaceChildren(...STEPS.map((step, i) =>
    h("li", { class: i < reached ? "done" : i === reached ? "current" : "todo", "data-step": step }, LABELS[step])));
}

async function revealKeys(target) {
  const box = $("card-keys");
  if (box.dataset.loaded) return;
  box.dataset.loaded = "1";
  try {
    const data = target.lookup
      ? (await request(GUEST_KEYS, { input: target.lookup })).orderLookup
      : (await request(KEYS, { id: target.id })).order;
    const keys = data?.cardKeys || [];
    box.replaceChildren(
      h("h3", {}, "Your card keys"),
      keys.length ? h("ul", {}, keys.map((k) => h("li", {}, h("code", { class: "secret" }, k.secret))))
        : h("p", {}, "This order has no card keys (a top-up or a manual delivery)."),
    );
    box.hidden = false;
  } catch (err) {
    delete box.dataset.loaded;
    showProblem(err.message);
  }
}

async function track(target) {
  showProblem("");
  stop?.();
  let order;
  try {
    order = target.lookup
      ? (await request(LOOKUP, { input: target.lookup })).orderLookup
      : (await request(ORDER, { id: target.id })).order;
  } catch (err) {
    showProblem(err.message);
    return;
  }
  if (!order) {
    showProblem(target.lookup ? "No order matches that number and password." : "Order not found (sign in as its buyer).");
    return;
  }
  target.id = order.id;
  $("tracking").hidden = false;
  $("order-title").textContent = `Order ${order.orderNo} · ${order.product.title}`;
  $("events").replaceChildren();
  $("card-keys").hidden = true;
  delete $("card-keys").dataset.loaded;
  const seen = new Set();
  stop = live.subscribe(TRACK, { orderId: order.id, lookup: target.lookup || null }, {
    next: ({ orderStatusChanged: event }) => {
      $("status").textContent = LABELS[event.status] || event.status;
      $("tracking").dataset.status = event.status;
      renderSteps(event.status);
      // After a reconnection the current state comes first again: list each status once.
      const key = `${event.status}@${event.at}`;
      if (!seen.has(key)) {
        seen.add(key);
        $("events").append(h("li", { "data-status": event.status },
          h("strong", {}, LABELS[event.status] || event.status), ` ${when(event.at)}`, event.note ? ` — ${event.note}` : ""));
      }
      if (HAS_KEYS.has(event.status)) revealKeys(target);
    },
    error: (err) => showProblem(err.message),
  });
}

$("guest-form").addEventListener("submit", (event) => {
  event.preventDefault();
  track({ lookup: { orderNo: $("order-no").value.trim(), password: $("order-password").value } });
});

signInBox($("signin"), () => {
  stop?.();
  stop = null;
  $("tracking").hidden = true;
  live.restart();
  listMyOrders();
});
listMyOrders();
const wanted = new URLSearchParams(location.search).get("order");
if (wanted && token.get()) track({ id: wanted });
