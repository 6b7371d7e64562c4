// What the live pages share: the endpoint, the signed-in token, GraphQL over HTTP (fetch) and
// over the WebSocket (graphql-ws, the reference graphql-transport-ws client), and a DOM helper
// that only ever sets text (nothing from the server is parsed as HTML).
import { createClient } from "graphql-ws";

export const httpUrl = new URL("/graphql", location.href).href;
export const wsUrl = httpUrl.replace(/^http/, "ws");

const TOKEN_KEY = "kameng.accessToken";

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || "",
  set: (value) => (value ? sessionStorage.setItem(TOKEN_KEY, value) : sessionStorage.removeItem(TOKEN_KEY)),
};

export class GraphQLFailure extends Error {
  constructor(errors) {
    super(errors.map((e) => e.message).join("; "));
    this.errors = errors;
    this.code = errors[0]?.extensions?.code || "";
  }
}

export async function request(query, variables = {}) {
  const headers = { "content-type": "application/json", accept: "application/json" };
  if (token.get()) headers.authorization = `Bearer ${token.get()}`;
  const response = await fetch(httpUrl, { method: "POST", headers, body: JSON.stringify({ query, variables }) });
  const body = await response.json();
  if (body.errors?.length) throw new GraphQLFailure(body.errors);
  return body.data;
}

// One WebSocket per page. The token goes in `connection_init`, so signing in or out restarts
// the connection (and the page subscribes again).
export class Live {
  constructor(onState) {
    this.onState = onState;
    this.client = this.#connect();
  }

  #connect() {
    const client = createClient({
      url: wsUrl,
      lazy: false,
      retryAttempts: Infinity,
      connectionParams: () => (token.get() ? { Authorization: `Bearer ${token.get()}` } : {}),
    });
    client.on("connecting", () => this.client === client && this.onState("connecting"));
    client.on("connected", () => this.client === client && this.onState("live"));
    client.on("closed", () => this.client === client && this.onState("reconnecting"));
    return client;
  }

  restart() {
    const old = this.client;
    this.client = this.#connect();
    old.dispose();
  }

  // Calls next(data) per result; returns the function that ends the subscription.
  subscribe(query, variables, { next, error }) {
    return this.client.subscribe(
      { query, variables },
      {
        next: (result) => (result.errors?.length ? error(new GraphQLFailure(result.errors)) : next(result.data)),
        error: (err) => error(err instanceof Error ? err : new Error(err?.reason || "connection closed")),
        complete: () => {},
      },
    );
  }
}

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function when(iso) {
  return new Date(iso).toLocaleString();
}

const LOGIN = `mutation SignIn($input: LoginInput!) {
  login(input: $input) { errors { code message } accessToken user { nickname } }
}`;

// The sign-in box: email and password (the `login` mutation), or signed in as someone.
export function signInBox(container, onChange) {
  if (token.get()) {
    // A token from earlier in this tab: show whose it is, or drop it once it has expired.
    request("{ viewer { nickname } }").then(
      ({ viewer }) => (viewer ? render(viewer.nickname) : (token.set(""), render(), onChange())),
      () => { token.set(""); render(); onChange(); },
    );
  }
  const render = (nickname) => {
    container.replaceChildren();
    if (token.get()) {
      container.append(
        h("span", { class: "who", "data-testid": "signed-in" }, `Signed in${nickname ? ` as ${nickname}` : ""}`),
        h("button", { type: "button", onclick: () => { token.set(""); render(); onChange(); } }, "Sign out"),
      );
      return;
    }
    const email = h("input", { name: "email", type: "email", placeholder: "email", autocomplete: "username", required: true });
    const password = h("input", { name: "password", type: "password", placeholder: "password", autocomplete: "current-password", required: true });
    const problem = h("span", { class: "problem", role: "alert" });
    const form = h("form", { class: "signin" }, email, password, h("button", { type: "submit" }, "Sign in"), problem);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      problem.textContent = "";
      try {
        const { login } = await request(LOGIN, { input: { email: email.value, password: password.value } });
        if (login.errors.length) { problem.textContent = login.errors[0].message; return; }
        token.set(login.accessToken);
        render(login.user.nickname);
        onChange();
      } catch (err) {
        problem.textContent = err.message;
      }
    });
    container.append(form);
  };
  render();
}

export function connectionBadge(el) {
  return (state) => {
    el.dataset.state = state;
    el.textContent = { live: "● live", connecting: "○ connecting…", reconnecting: "○ reconnecting…" }[state] || state;
  };
}
