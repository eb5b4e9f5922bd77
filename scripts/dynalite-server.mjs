/**
 * Runs dynalite, the local stack's DynamoDB: a Node implementation of the DynamoDB API on
 * LevelDB that keeps DynamoDB's validation, error messages and conditional-write semantics.
 * Plain JavaScript run by node, so it starts in well under a second.
 *
 * Tables are ACTIVE at once (CreateTable, UpdateTable and DeleteTable take 0 ms, where
 * dynalite's default is 500 ms): the local stack and the tests create their tables on the fly.
 *
 * Usage: node scripts/dynalite-server.mjs HOST PORT [PATH]
 *   PORT — 0 takes any free port; with KEYWARDEN_PORT_FILE set, the port listened on is written
 *          there once bound (scripts/local-stack.ts reads it).
 *   PATH — a folder for the LevelDB store; without it the data lives in memory and goes
 *          with the process (as moto's does).
 */
import { renameSync, writeFileSync } from 'node:fs';
import dynalite from 'dynalite';

const [host, port, path] = process.argv.slice(2);
if (!host || !port || !/^\d+$/.test(port)) {
  console.error('usage: node scripts/dynalite-server.mjs HOST PORT [PATH]');
  process.exit(2);
}

const server = dynalite({
  createTableMs: 0,
  deleteTableMs: 0,
  updateTableMs: 0,
  ...(path ? { path } : {}),
});
server.listen(Number(port), host, () => {
  const listening = server.address().port;
  const portFile = process.env.KEYWARDEN_PORT_FILE;
  if (portFile) {
    // Written whole, then renamed: a reader never sees half a number.
    writeFileSync(`${portFile}.tmp`, String(listening));
    renameSync(`${portFile}.tmp`, portFile);
  }
  console.log(
    `dynalite listening on http://${host}:${listening} (${path ? `LevelDB in ${path}` : 'in memory'})`,
  );
});
server.on('error', (error) => {
  console.error(`dynalite: ${error.message}`);
  process.exit(1);
});

// stopStack sends SIGTERM to the process group; close the store so an on-disk one is left consistent.
const stop = () => {
  server.close(() => process.exit(0));
  // A client holding a connection open must not keep the stack from stopping.
  setTimeout(() => process.exit(0), 5_000).unref();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
