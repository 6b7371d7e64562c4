// Apollo Client with automatic persisted queries, run twice on the same query, with every
// HTTP exchange recorded. Prints one JSON object: {results: [...], exchanges: [...]}.
// Usage: node apollo_persisted.mjs <http url> <post|get> <query>
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { createHash } from 'node:crypto';

const [uri, method, query] = process.argv.slice(2);
const exchanges = [];

async function recordingFetch(input, init) {
  const url = new URL(typeof input === 'string' ? input : input.url);
  const sent = init?.body ? JSON.parse(init.body) : {
    query: url.searchParams.get('query') ?? undefined,
    extensions: url.searchParams.has('extensions') ? JSON.parse(url.searchParams.get('extensions')) : undefined,
  };
  const response = await fetch(input, init);
  const text = await response.clone().text();
  exchanges.push({
    method: init?.method ?? 'GET',
    accept: new Headers(init?.headers).get('accept'),
    query: sent.query ?? null,
    hash: sent.extensions?.persistedQuery?.sha256Hash ?? null,
    status: response.status,
    contentType: response.headers.get('content-type'),
    cacheControl: response.headers.get('cache-control'),
    body: JSON.parse(text),
  });
  return response;
}

const link = new PersistedQueryLink({
  sha256: (text) => createHash('sha256').update(text).digest('hex'),
  useGETForHashedQueries: method === 'get',
}).concat(new HttpLink({ uri, fetch: recordingFetch }));
const client = new ApolloClient({ link, cache: new InMemoryCache() });

const results = [];
for (let i = 0; i < 2; i++) {
  try {
    const { data, error } = await client.query({ query: gql(query), fetchPolicy: 'network-only', errorPolicy: 'all' });
    results.push({ data: data ?? null, error: error ? { name: error.name, message: error.message, errors: error.errors ?? null } : null });
  } catch (error) {
    results.push({ data: null, error: { name: error.name, message: error.message, errors: error.errors ?? null } });
  }
}
process.stdout.write(JSON.stringify({ results, exchanges }) + '\n');
