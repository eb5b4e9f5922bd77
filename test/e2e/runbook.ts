/**
 * Reads the commands out of a runbook, so an end-to-end test can run exactly what the
 * on-call engineer is told to run. A runbook's commands are the lines of its ```sh
 * blocks. Each is a `keywarden …` command, or carries a `# example` comment (not
 * runnable as written: another tool, or a value only the reader knows); the expected
 * exit code is written beside it as a comment starting `# exits N …` (0 when unsaid).
 */

/** One runnable line of a runbook. */
export interface RunbookCommand {
  /** The headings above the command, outermost first. */
  headings: string[];
  /** 1-based line of the command in the runbook. */
  line: number;
  /** The command as written, without its comment. */
  text: string;
  /** The comment beside it, without `#`. */
  comment: string;
  /** The exit code the runbook promises: a comment starting `# exits N`, else 0. */
  expectedExit: number;
}

/** What a runbook holds: its runnable commands and how many lines it marks `# example`. */
export interface Runbook {
  commands: RunbookCommand[];
  examples: number;
}

/** A runbook line the test cannot run and that is not marked `# example`. */
export class RunbookError extends Error {
  override readonly name = 'RunbookError';
}

const FENCE = /^\s*```(\S*)\s*$/;
const HEADING = /^(#{1,6})\s+(.*?)\s*#*\s*$/;
/** The promised exit code: a comment that starts with `exits N`. */
const EXITS = /^exits (\d+)\b/;
const EXAMPLE = /^example\b/;
/** Shell syntax that only a shell understands; a command run without a shell must not contain it. */
const SHELL_SYNTAX = /[|&;<>`(){}*?]|\$\(/;

/** Splits `line` into the command and its trailing `# comment` (a `#` outside quotes, after a space). */
function splitComment(line: string): { code: string; comment: string } {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i += 1) {
    const char = line[i];
    if (quote) {
      if (char === quote) quote = undefined;
    } else if (char === '"' || char === "'") quote = char;
    else if (char === '#' && (i === 0 || /\s/.test(line[i - 1] ?? ''))) {
      return { code: line.slice(0, i).trim(), comment: line.slice(i + 1).trim() };
    }
  }
  return { code: line.trim(), comment: '' };
}

/** A fenced block of a runbook, with the headings it sits under. */
export interface FencedBlock {
  /** The block's language (```sh → `sh`). */
  lang: string;
  /** The headings above the block, outermost first. */
  headings: string[];
  /** 1-based line of the block's first content line. */
  firstLine: number;
  lines: string[];
}

/** Every fenced block of `markdown`, in order. */
export function fencedBlocks(markdown: string): FencedBlock[] {
  const blocks: FencedBlock[] = [];
  const headings: { level: number; text: string }[] = [];
  let open: FencedBlock | undefined;
  markdown.split('\n').forEach((raw, index) => {
    const fence = FENCE.exec(raw);
    if (fence) {
      if (open) blocks.push(open);
      open = open
        ? undefined
        : { lang: fence[1] ?? '', headings: headings.map((h) => h.text), firstLine: index + 2, lines: [] };
      return;
    }
    if (open) {
      open.lines.push(raw);
      return;
    }
    const heading = HEADING.exec(raw);
    if (!heading) return;
    const level = (heading[1] ?? '').length;
    while (headings.length > 0 && (headings.at(-1)?.level ?? 0) >= level) headings.pop();
    headings.push({ level, text: heading[2] ?? '' });
  });
  if (open) throw new RunbookError(`the runbook ends inside the block opened at line ${open.firstLine - 1}`);
  return blocks;
}

/**
 * Every command of the ```sh blocks of `markdown`, with the headings it sits under.
 * Lines continued with `\` are joined. Comment-only lines and lines marked
 * `# example` are left out (and counted).
 */
export function extractCommands(markdown: string): Runbook {
  const commands: RunbookCommand[] = [];
  let examples = 0;
  for (const block of fencedBlocks(markdown).filter((b) => b.lang === 'sh')) {
    for (let i = 0; i < block.lines.length; i += 1) {
      const start = i;
      let line = block.lines[i] ?? '';
      while (/\\\s*$/.test(splitComment(line).code) && i + 1 < block.lines.length) {
        i += 1;
        line = `${splitComment(line).code.replace(/\\\s*$/, '')} ${block.lines[i] ?? ''}`;
      }
      const { code, comment } = splitComment(line);
      if (code === '') continue;
      if (EXAMPLE.test(comment)) {
        examples += 1;
        continue;
      }
      commands.push({
        headings: block.headings,
        line: block.firstLine + start,
        text: code,
        comment,
        expectedExit: Number(EXITS.exec(comment)?.[1] ?? 0),
      });
    }
  }
  return { commands, examples };
}

/**
 * The arguments of `command` after `keywarden`, with `$NAME` / `${NAME}` replaced from
 * `vars`. Throws when the line is not a plain `keywarden` command (mark such lines
 * `# example`) or names a placeholder `vars` does not have.
 */
export function toArgv(command: RunbookCommand, vars: Readonly<Record<string, string>>): string[] {
  const where = `line ${command.line} \`${command.text}\``;
  const words: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  const text = command.text;
  for (let i = 0; i < text.length; i += 1) {
    const char = text[i] ?? '';
    if (quote === "'") {
      if (char === "'") quote = undefined;
      else word += char;
      continue;
    }
    if (char === '"' && quote === '"') {
      quote = undefined;
      continue;
    }
    if (char === '$') {
      const name = /^\$(?:\{(\w+)\}|(\w+))/.exec(text.slice(i));
      if (!name) throw new RunbookError(`${where}: a lone $ is shell syntax; mark the line # example`);
      const key = name[1] ?? name[2] ?? '';
      const value = vars[key];
      if (value === undefined) {
        throw new RunbookError(
          `${where}: placeholder $${key} has no value (known: ${Object.keys(vars).join(', ')})`,
        );
      }
      word = (word ?? '') + value;
      i += name[0].length - 1;
      continue;
    }
    if (quote !== '"') {
      if (/\s/.test(char)) {
        if (word !== undefined) words.push(word);
        word = undefined;
        continue;
      }
      if (char === '"' || char === "'") {
        quote = char;
        word = word ?? '';
        continue;
      }
      if (SHELL_SYNTAX.test(char)) {
        throw new RunbookError(`${where}: ${JSON.stringify(char)} needs a shell; mark the line # example`);
      }
    }
    word = (word ?? '') + char;
  }
  if (quote) throw new RunbookError(`${where}: unterminated ${quote}`);
  if (word !== undefined) words.push(word);
  const [program, ...args] = words;
  if (program !== 'keywarden') {
    throw new RunbookError(
      `${where}: not a keywarden command; mark it # example if it is not runnable as written`,
    );
  }
  return args;
}

/** The commands under the heading that starts with `prefix` (at any level). */
export function commandsUnder(runbook: Runbook, prefix: string): RunbookCommand[] {
  return runbook.commands.filter((command) => command.headings.some((h) => h.startsWith(prefix)));
}
