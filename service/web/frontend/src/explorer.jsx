// The explorer at GET /graphql: GraphiQL, bundled with React, graphql and graphql-ws so that it
// works offline. Queries and mutations go over HTTP; subscriptions over the WebSocket, with the
// Headers pane sent as connection params (so `Authorization` works for both).
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import "graphiql/style.css";
import { createRoot } from "react-dom/client";

const url = new URL("/graphql", location.href).href;
const fetcher = createGraphiQLFetcher({ url, subscriptionUrl: url.replace(/^http/, "ws") });

const AUTH_NOTE = `# Signed-in operations need an access token:
# run "SignIn" (next tab), copy its accessToken,
# and put this in the Headers pane below:
#
#   { "Authorization": "Bearer <accessToken>" }
#
# It goes with every HTTP request and, for
# subscriptions, in the WebSocket's connection_init.
# Tokens last 15 minutes (refreshToken mutation).
`;

const defaultTabs = [
  {
    query: `${AUTH_NOTE}
query Products($first: Int = 5) {
  products(first: $first, sort: NEWEST) {
    totalCount
    edges {
      node {
        id
        title
        price { amount currency }
        deliveryKind
        stock
        rating
        merchant { name }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
`,
    variables: `{ "first": 5 }`,
  },
  {
    query: `# Sign in, then copy accessToken into Headers:
#   { "Authorization": "Bearer <accessToken>" }
mutation SignIn($input: LoginInput!) {
  login(input: $input) {
    errors { code field message }
    accessToken
    refreshToken
    expiresIn
    user { id nickname role tier }
  }
}
`,
    variables: `{ "input": { "email": "buyer@example.com", "password": "correct horse battery" } }`,
  },
  {
    query: `# Live order tracking over the WebSocket:
# the current status first, then every
# transition: PENDING_PAYMENT -> PAID ->
# DELIVERING -> DELIVERED. The buyer sends the
# Authorization header; a guest passes "lookup":
# { "orderNo": "...", "password": "..." }
subscription TrackOrder($orderId: ID!, $lookup: OrderLookupInput) {
  orderStatusChanged(orderId: $orderId, lookup: $lookup) {
    status
    at
    note
    order { orderNo status total { amount currency } }
  }
}
`,
    variables: `{ "orderId": "<an Order ID from viewer.orders or createOrder>" }`,
  },
  {
    query: `# New community posts as they are published (no sign-in needed).
subscription LiveFeed($topic: String) {
  liveFeed(topic: $topic) {
    id
    kind
    title
    author { nickname }
    createdAt
  }
}
`,
    variables: `{}`,
  },
];

createRoot(document.getElementById("graphiql")).render(
  <GraphiQL
    fetcher={fetcher}
    defaultTabs={defaultTabs}
    defaultEditorToolsVisibility="headers"
    defaultHeaders=""
    shouldPersistHeaders={false}
  />,
);
