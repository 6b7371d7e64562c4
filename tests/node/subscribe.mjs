// One subscription with npm graphql-ws (the client behind Apollo's GraphQLWsLink, urql and
// GraphiQL), printed as JSON lines for tests/test_clients.py:
//   {"event":"connected"}, then {"event":"next","payload":...} per result, then {"event":"done"}.
// Usage: node subscribe.mjs <ws url> <bearer token or ""> <results to wait for> <query> [variables JSON]
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, token, wanted, query, variables] = process.argv.slice(2);
const print = (line) => process.stdout.write(JSON.stringify(line) + '\n');

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  lazy: false,
  retryAttempts: 0,
  connectionParams: token ? { Authorization: `Bearer ${token}` } : {},
  on: { connected: () => print({ event: 'connected' }) },
});

let received = 0;
try {
  for await (const result of client.iterate({ query, variables: variables ? JSON.parse(variables) : {} })) {
    print({ event: 'next', payload: result });
    if (++received >= Number(wanted)) break;
  }
  print({ event: 'done' });
} catch (error) {
  // A CloseEvent (e.g. 4004 on a binary frame) or a list of GraphQL errors.
  print({ event: 'error', error: error?.code ? { code: error.code, reason: error.reason } : error });
  process.exitCode = 1;
} finally {
  await client.dispose();
}
