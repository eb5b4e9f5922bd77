#!/usr/bin/env node
// The keywarden command. The sources are TypeScript; tsx compiles them on load.
import { register } from 'tsx/esm/api';

// The AWS SDK warns on every start that it will need Node 22 from 2027; Lambda runs 22
// already, and on a laptop the warning only hides the command's own output.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = (warning, ...rest) => {
  const type = typeof rest[0] === 'string' ? rest[0] : rest[0]?.type;
  const text = typeof warning === 'string' ? warning : warning?.message;
  if (type === 'NodeVersionSupportWarning' || text?.startsWith?.('NodeVersionSupportWarning')) return;
  emitWarning(warning, ...rest);
};

register();
await import('../cli/main.ts');
