// /dashboard: an admin signs in, reads `retentionAnalytics` (the numbers) and GET /dashboard/charts
// (the report's SVG charts, drawn by the server's own plotting code). Plain ES module, no bundle, no
// dependency: nothing from the server is parsed as HTML (text nodes only; SVG shown as <img> data URLs).
const TOKEN_KEY = "kameng.accessToken"; // shared with the live pages (same tab, same origin)
const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY) || "",
  set: (value) => (value ? sessionStorage.setItem(TOKEN_KEY, value) : sessionStorage.removeItem(TOKEN_KEY)),
};
const $ = (id) => document.getElementById(id);

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) el.append(child instanceof Node ? child : String(child));
  return el;
}

function headers() {
  const all = { "content-type": "application/json", accept: "application/json" };
  if (token.get()) all.authorization = `Bearer ${token.get()}`;
  return all;
}

async function gql(query, variables = {}) {
  const response = await fetch("/graphql", { method: "POST", headers: headers(), body: JSON.stringify({ query, variables }) });
  const body = await response.json();
  if (body.errors?.length) throw new Error(body.errors.map((e) => e.message).join("; "));
  return body.data;
}

const LOGIN = `mutation SignIn($input: LoginInput!) { login(input: $input) { errors { code message } accessToken user { nickname } } }`;
const M = "{ value users suppressed }";
const ANALYTICS = `query Retention($input: RetentionAnalyticsInput) { retentionAnalytics(input: $input) {
  errors { code message field }
  analytics { since until minGroup notes buyers ${M} repurchaseRate ${M} singlePurchaseShare ${M}
    meanDaysBetweenPurchases ${M} crossCategoryRate ${M} unpromptedReturnShare ${M} visitsPerUserPerMonth ${M} } } }`;
const ROWS = [
  ["buyers", "Buyers in the period", (v) => String(Math.round(v))],
  ["repurchaseRate", "Repurchase rate", pct], ["singlePurchaseShare", "Single-purchase buyers", pct],
  ["meanDaysBetweenPurchases", "Mean days between purchases", (v) => v.toFixed(1)],
  ["crossCategoryRate", "Cross-category buyers", pct], ["unpromptedReturnShare", "Unprompted return (user-months)", pct],
  ["visitsPerUserPerMonth", "Visits per user per month", (v) => v.toFixed(2)],
];
function pct(v) { return `${(v * 100).toFixed(1)}%`; }

function signInBox() {
  const box = $("signin");
  box.replaceChildren();
  if (token.get()) {
    box.append(h("span", { class: "who", "data-testid": "signed-in" }, "Signed in"),
      h("button", { type: "button", onclick: () => { token.set(""); signInBox(); load(); } }, "Sign out"));
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
      const { login } = await gql(LOGIN, { input: { email: email.value, password: password.value } });
      if (login.errors.length) { problem.textContent = login.errors[0].message; return; }
      token.set(login.accessToken);
      signInBox();
      load();
    } catch (err) { problem.textContent = err.message; }
  });
  box.append(form);
}

function clear() {
  $("summary-box").hidden = true;
  $("period").hidden = true;
  $("charts").replaceChildren();
  $("summary").tBodies[0].replaceChildren();
  $("notes").textContent = "";
}

function period() {
  const form = $("period");
  const input = {};
  for (const name of ["since", "until"]) if (form.elements[name].value) input[name] = form.elements[name].value;
  return input;
}

async function load() {
  $("problem").textContent = "";
  clear();
  $("hint").hidden = Boolean(token.get());
  if (!token.get()) return;
  const input = period();
  document.body.dataset.state = "loading";
  try {
    const { retentionAnalytics: result } = await gql(ANALYTICS, { input });
    if (result.errors.length) {
      $("problem").textContent = result.errors[0].code === "FORBIDDEN" ? "Only admins can see the retention analytics." : result.errors[0].message;
      document.body.dataset.state = "refused";
      return;
    }
    const a = result.analytics;
    $("period").hidden = false;
    $("period").elements.since.value = a.since;
    $("period").elements.until.value = a.until;
    $("shown-period").textContent = `Aggregates over fewer than ${a.minGroup} users are suppressed.`;
    for (const [key, label, format] of ROWS) {
      const m = a[key];
      $("summary").tBodies[0].append(h("tr", { "data-metric": key }, h("td", {}, label),
        m.suppressed ? h("td", { class: "suppressed" }, "suppressed") : h("td", {}, format(m.value)),
        h("td", {}, m.suppressed ? "< " + a.minGroup : String(m.users))));
    }
    $("notes").textContent = a.notes.join(" ");
    $("summary-box").hidden = false;
    const query = new URLSearchParams({ since: a.since, until: a.until });
    const response = await fetch(`/dashboard/charts?${query}`, { headers: headers() });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error?.message || `charts: HTTP ${response.status}`);
    for (const chart of body.charts) {
      const src = "data:image/svg+xml;base64," + btoa(unescape(encodeURIComponent(chart.svg)));
      $("charts").append(h("figure", { class: "chart", "data-chart": chart.name },
        h("figcaption", {}, chart.title), h("img", { src, alt: chart.title })));
    }
    document.body.dataset.state = "ready";
  } catch (err) {
    $("problem").textContent = err.message;
    document.body.dataset.state = "failed";
  }
}

$("period").addEventListener("submit", (event) => { event.preventDefault(); load(); });
signInBox();
load();
