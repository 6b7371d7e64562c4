// Bundles the explorer and the live pages into ../static/dist (committed), so that the app
// serves every byte itself: no CDN, nothing fetched at run time. Run `npm ci && npm run build`
// after changing anything under src/ or package.json, and commit the output.
import { build } from "esbuild";
import { rmSync } from "node:fs";

const outdir = new URL("../static/dist/", import.meta.url).pathname;
rmSync(outdir, { recursive: true, force: true });

await build({
  entryPoints: {
    explorer: "src/explorer.jsx",
    track: "src/track.js",
    live: "src/live.js",
  },
  outdir,
  bundle: true,
  minify: true,
  format: "esm",
  target: ["es2020"],
  jsx: "automatic",
  define: { "process.env.NODE_ENV": '"production"' },
  // Licences of the bundled packages travel with the bundles.
  legalComments: "external",
  logLevel: "info",
});
