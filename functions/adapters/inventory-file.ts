import { readFile } from 'node:fs/promises';
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import { ValidationError } from '../core/errors.ts';
import { type Inventory, type Problem, validateInventory } from '../core/inventory.ts';

/** A problem in an inventory file, with the line and column it was found at (1-based). */
export interface LocatedProblem extends Problem {
  file: string;
  line: number;
  column: number;
}

/** The file is missing, unreadable, or not YAML: one sentence, no position list. */
export class InventoryFileError extends ValidationError {
  override readonly name = 'InventoryFileError';
}

export type InventoryParse = { ok: true; inventory: Inventory } | { ok: false; problems: LocatedProblem[] };

/** `file:line:column field.path: expected …, got …` */
export const formatProblem = (p: LocatedProblem): string =>
  `${p.file}:${p.line}:${p.column} ${p.path.length ? p.path.join('.') : '(file)'}: ${p.message}`;

/** The deepest node of the document on `path`, and whether the whole path exists. */
function locate(root: Node | null, path: readonly (string | number)[]): Node | null {
  let node: unknown = root;
  let found: Node | null = root;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => isScalar(item.key) && String(item.key.value) === String(segment),
      );
      if (!pair) break;
      node = pair.value ?? pair.key;
      found = (pair.value ?? pair.key) as Node;
    } else if (isSeq(node) && typeof segment === 'number') {
      node = node.items[segment];
      if (!node) break;
      found = node as Node;
    } else {
      break;
    }
  }
  return found;
}

/**
 * Parses and validates an inventory document, reporting every problem at once,
 * each located in the source text.
 */
export function parseInventory(text: string, file: string): InventoryParse {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const [syntax] = doc.errors;
  if (syntax) {
    const { line, col } = lineCounter.linePos(syntax.pos[0]);
    const reason = syntax.message.split('\n')[0] ?? 'syntax error';
    throw new InventoryFileError(
      `${file}:${line}:${col} is not valid YAML (${reason}); fix the syntax and run the command again.`,
    );
  }
  const result = validateInventory(doc.toJS());
  if (result.ok) return result;
  const problems = result.problems.map((problem) => {
    const node = locate(doc.contents, problem.path);
    const { line, col } = lineCounter.linePos(node?.range?.[0] ?? 0);
    return { ...problem, file, line, column: col };
  });
  problems.sort((a, b) => a.line - b.line || a.column - b.column);
  return { ok: false, problems };
}

/** Reads `file` and parses it; a missing or unreadable file is one clear error. */
export async function loadInventoryFile(file: string): Promise<InventoryParse> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'does not exist'
        : code === 'EISDIR'
          ? 'is a directory'
          : `cannot be read (${code})`;
    throw new InventoryFileError(`${file} ${why}; expected an identities.yaml inventory file.`, { cause });
  }
  return parseInventory(text, file);
}

/** Like {@link loadInventoryFile}, but throws a ValidationError listing every problem. */
export async function readInventoryOrThrow(file: string): Promise<Inventory> {
  const parsed = await loadInventoryFile(file);
  if (parsed.ok) return parsed.inventory;
  throw new ValidationError(
    `${file} has ${parsed.problems.length} problem(s):\n${parsed.problems.map(formatProblem).join('\n')}`,
  );
}
