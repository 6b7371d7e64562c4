// The GraphQL-over-HTTP server audit of npm graphql-http, as one JSON array on stdout.
// Usage: node audit.mjs <http url of the GraphQL endpoint>
import { serverAudits } from 'graphql-http';

const results = [];
for (const audit of serverAudits({ url: process.argv[2], fetchFn: fetch })) {
  const result = await audit.fn();
  results.push({ id: audit.id, name: audit.name, status: result.status, reason: result.reason ?? null });
}
process.stdout.write(JSON.stringify(results) + '\n');
